"""The Gutenberg catalog: the mirror's two feeds fetched, parsed, cached and refreshed, for --books queries and books.py.

`cache/epub/feeds/pg_catalog.csv.gz` gives each book's type, title, languages, authors, subjects and
bookshelves; the download counts that top: ranks by exist only in `cache/epub/feeds/rdf-files.tar.bz2`, an
archive of one RDF file per book, fetched only when asked for. Both are kept in `<cache_dir>/catalog/` (one
file per feed and mirror, written atomically) with the time they were fetched, and fetched again when older
than --catalog_max_age days or with --refresh_catalog. When the mirror cannot be had, a cached copy of any
age is used with a warning.
"""

import csv
import dataclasses
import functools
import gzip
import hashlib
import io
import json
import operator
import pathlib
import re
import sys
import tarfile
import time
import zlib
from collections.abc import Callable, Mapping

from errors import UserError
from files import write_file_atomically
from pipeline import book_queries, sources

CATALOG_FEED = "cache/epub/feeds/pg_catalog.csv.gz"
RDF_FEED = "cache/epub/feeds/rdf-files.tar.bz2"
COLUMNS = ("Text#", "Type", "Title", "Language", "Authors", "Subjects", "Bookshelves")  # those read, of the feed's nine
CACHE_FORMAT = 2
KEY_FIELDS = (*book_queries.TEXT_FIELDS, *book_queries.CODE_FIELDS)
SECONDS_PER_DAY = 86_400

# The cache keeps each column as one string, rows joined by this (a control character no catalog field holds):
# a few long strings load many times faster than 90,000 short ones each.
_SEPARATOR = "\x1f"
_DIGIT = re.compile(r"\d")
# pgterms:downloads is one short element near the top of each RDF file; a regular expression over the bytes finds
# it far faster than an XML parser would build the whole tree of the 75,000 files (bench/README.md).
_DOWNLOADS = re.compile(rb"<pgterms:downloads[^>]*>\s*(\d+)\s*</pgterms:downloads>")


class FeedDamaged(UserError):
    """A feed came whole from the mirror but cannot be read: cut short, not gzip or bzip2, another layout."""


class Catalog:
    """The catalog's rows, in the feed's order: what listings show, and the folded columns queries match.

    Columns are lists of strings, one per row; a column read from the cache is kept as one string until used,
    since splitting the ones a query does not need would take most of its time.
    """

    DISPLAY = ("titles", "first_authors", "languages")  # titles with white space as single spaces; authors without dates

    def __init__(self, ids: list[int] | str, columns: dict[str, list[str] | str], *, source: str, fetched_at: float):
        self._ids = ids  # or the ids joined by _SEPARATOR
        self._columns = columns  # DISPLAY and "key:<field>" of every field of book_queries.TEXT_FIELDS and CODE_FIELDS
        self.source = source  # the feed's URL
        self.fetched_at = fetched_at  # seconds since the epoch

    @functools.cached_property
    def ids(self) -> list[int]:
        return self._ids if isinstance(self._ids, list) else [int(book_id) for book_id in self._ids.split(_SEPARATOR)]

    def column(self, name: str) -> list[str]:
        value = self._columns[name]
        if isinstance(value, str):
            value = self._columns[name] = value.split(_SEPARATOR) if self.ids else []
            if len(value) != len(self.ids):
                raise FeedDamaged(f"the cached catalog's column {name} has {len(value):,} rows, not {len(self.ids):,}")
        return value

    def select(self, query: book_queries.Query, downloads: "DownloadCounts | None" = None) -> list[int]:
        ranked = downloads.ranked if downloads else None
        return book_queries.select_books(query, lambda field: self.column(f"key:{field}"), self.ids, ranked)

    @functools.cached_property
    def row_of(self) -> dict[int, int]:
        return {book_id: row for row, book_id in enumerate(self.ids)}

    def describe(self, book_id: int) -> str:
        """'84  Frankenstein; Or, The Modern Prometheus (Shelley, Mary Wollstonecraft)', or just the id if not listed."""
        row = self.row_of.get(book_id)
        if row is None:
            return f"{book_id:>6}  (not in the catalog)"
        author = self.column("first_authors")[row]
        return f"{book_id:>6}  {self.column('titles')[row]}{f' ({author})' if author else ''}"


@dataclasses.dataclass(frozen=True)
class DownloadCounts:
    counts: dict[int, int]  # ebook id -> downloads in the last 30 days
    source: str
    fetched_at: float

    @functools.cached_property
    def ranked(self) -> list[int]:
        """The ids, most downloaded first, ties by id (the cache keeps them in this order)."""
        return sorted(self.counts, key=lambda book_id: (-self.counts[book_id], book_id))


@dataclasses.dataclass
class CatalogSource:
    """Where the catalog comes from and how old a cached copy may be; each feed is loaded once, when first asked for."""

    mirror: str
    cache_dir: pathlib.Path
    max_age_days: float = 7.0
    refresh: bool = False
    download_options: dict = dataclasses.field(default_factory=dict)  # timeout, attempts, backoff of sources.download
    warn: Callable[[str], None] = lambda message: print(message, file=sys.stderr)

    @functools.cached_property
    def catalog(self) -> Catalog:
        return self._load(CATALOG_FEED, "the Gutenberg catalog", "catalog", _fetch_catalog, _catalog_from_bytes)

    @functools.cached_property
    def downloads(self) -> DownloadCounts:
        return self._load(RDF_FEED, "the Gutenberg download counts", "downloads", _fetch_download_counts, _counts_from_bytes)

    def _load(self, feed: str, what: str, name: str, fetch, from_bytes):
        url = feed_url(self.mirror, feed)
        path = pathlib.Path(self.cache_dir) / "catalog" / f"{name}-{hashlib.sha256(url.encode()).hexdigest()[:12]}.cache"
        cached = _read_cache(path, from_bytes, url, warn=self.warn)
        age_days = (time.time() - cached.fetched_at) / SECONDS_PER_DAY if cached else None
        if cached and not self.refresh and age_days <= self.max_age_days:
            return cached
        try:
            fresh = fetch(url, what=what, **self.download_options)
        except UserError as error:  # offline, a mirror without feeds, a damaged feed
            if cached is None:
                raise UserError(
                    f"{error}. No copy of {what} is cached in {path.parent} either, so a --books "
                    "query cannot be answered: give ebook ids instead, or try again once the mirror can be reached"
                ) from None
            self.warn(f"warning: {error}; using the copy cached {_when(cached.fetched_at)} ({age_days:.1f} days old)")
            return cached
        write_file_atomically(path, _to_bytes(fresh))
        return fresh


def feed_url(mirror: str, feed: str) -> str:
    """The address of a feed on a mirror, as gutenberg_book_url gives a book's (a directory becomes a file:// URL)."""
    book_url = sources.gutenberg_book_url(1, mirror=mirror)
    return book_url.removesuffix("cache/epub/1/pg1.txt") + feed


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


# --- pg_catalog.csv.gz ---


def _fetch_catalog(url: str, *, what: str, **download_options) -> Catalog:
    advice = "this mirror has no catalog feed; give ebook ids instead of a query, or use --gutenberg_mirror=https://www.gutenberg.org"
    data = sources.download(url, what=what, expected="a gzip file", if_missing=advice, if_missing_locally=advice, **download_options)
    try:
        text = gzip.decompress(data).decode("utf-8-sig")
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError; a cut-short file an EOFError
        raise FeedDamaged(f"{what} {url} is damaged ({error}); try again later or use another --gutenberg_mirror") from None
    except UnicodeDecodeError as error:
        raise FeedDamaged(f"{what} {url} is not UTF-8 text ({error}); use another --gutenberg_mirror") from None
    return parse_catalog_csv(text, source=url, fetched_at=time.time())


def parse_catalog_csv(text: str, *, source: str, fetched_at: float) -> Catalog:
    """The rows of pg_catalog.csv (columns Text#,Type,Issued,Title,Language,Authors,Subjects,LoCC,Bookshelves)."""
    text = text.replace(_SEPARATOR, " ")  # the cache's row separator, which no real catalog holds
    reader = csv.reader(io.StringIO(text, newline=""))  # the csv module reads quoted fields that span lines
    header = next(reader, [])
    missing = [column for column in COLUMNS if column not in header]
    if missing:
        raise FeedDamaged(
            f"the Gutenberg catalog {source} does not have the columns charbook reads ({', '.join(missing)} missing; "
            f"its header is {','.join(header)[:200]!r}): the feed's layout has changed, or it is not the catalog; "
            "use another --gutenberg_mirror, or give ebook ids instead of a query"
        )
    pick = operator.itemgetter(*(header.index(column) for column in COLUMNS))
    rows = []
    for row in reader:
        try:
            rows.append(pick(row))
        except IndexError:
            if row:
                raise _damaged_at(source, reader.line_num, row) from None
    id_texts, types, titles, languages, authors, subjects, shelves = zip(*rows) if rows else [()] * len(COLUMNS)
    bad = next((i for i, book_id in enumerate(id_texts) if not book_id.isdigit()), None)
    if bad is not None:
        raise _damaged_at(source, None, rows[bad])
    first_authors, author_keys = zip(*map(_authors, authors)) if rows else ((), ())
    fold = book_queries.fold_column
    columns = {
        "titles": [" ".join(title.split()) for title in titles],
        "first_authors": list(first_authors),
        "languages": list(languages),
        "key:author": fold(author_keys),
        "key:title": fold(titles),
        "key:subject": fold(subjects),
        "key:shelf": fold(shelves),
        "key:lang": fold([book_queries.code_key(codes) for codes in languages]),
        "key:type": fold([book_queries.code_key(kind) for kind in types]),
    }
    return Catalog([int(book_id) for book_id in id_texts], columns, source=source, fetched_at=fetched_at)


def _damaged_at(source: str, line: int | None, row) -> FeedDamaged:
    where = f" at line {line:,}" if line else ""
    return FeedDamaged(
        f"the Gutenberg catalog {source} is damaged{where} ({','.join(row)[:80]!r} is not a row of the catalog); "
        "try again later or use another --gutenberg_mirror"
    )


def _authors(field: str) -> tuple[str, str]:
    """(first author's name, every author as written and first name first), of an Authors field; translators,
    editors and the like (a role in brackets) are not authors.

    'Grimm, Jacob, 1785-1863; Hunt, Margaret, 1831-1912 [Translator]' -> ('Grimm, Jacob', 'Grimm, Jacob|Jacob Grimm')
    """
    authors, others = [], []
    for person in field.split("; ") if field else ():
        name, role = person, "Author"
        if person.endswith("]") and " [" in person:
            name, _, role = person[:-1].rpartition(" [")
        without_dates, comma, dates = name.rpartition(", ")
        if comma and _DIGIT.search(dates):  # "Austen, Jane, 1775-1817", "Plato, 428? BCE-348? BCE"
            name = without_dates
        (authors if role == "Author" else others).append(name)
    names = authors or others
    forms = []
    for name in authors:
        last, _, first = name.partition(", ")
        forms += [name, f"{first} {last}"] if first else [name]
    # "|" keeps a search from running from one name into the next, as white space would
    return (names[0] if names else ""), "|".join(forms)


# --- rdf-files.tar.bz2 ---


def _fetch_download_counts(url: str, *, what: str, **download_options) -> DownloadCounts:
    advice = "this mirror has no RDF feed; leave out top:, or use --gutenberg_mirror=https://www.gutenberg.org"

    def read(response) -> dict[int, int]:
        return read_download_counts(response, source=url)

    counts = sources.download(
        url, what=what, read=read, expected="a bzip2 archive", if_missing=advice, if_missing_locally=advice, **download_options
    )
    return DownloadCounts(counts, source=url, fetched_at=time.time())


def read_download_counts(stream, *, source: str) -> dict[int, int]:
    """Ebook id -> pgterms:downloads of every cache/epub/<id>/pg<id>.rdf in the tar.bz2 `stream`, read as it arrives.

    The archive is read once from start to end ('r|bz2'), one member at a time, so memory stays flat; entries
    whose folder is not an ebook number (cache/epub/test/) and files without a count are skipped. Errors of
    `stream` itself (the network) pass through, to be retried; an archive that cannot be read raises FeedDamaged.
    """
    counts = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|bz2") as archive:
            for member in archive:
                folder = member.name.rsplit("/", 2)[-2:-1]
                if not (member.isfile() and folder and folder[0].isdigit()):
                    continue
                found = _DOWNLOADS.search(archive.extractfile(member).read())
                if found:
                    counts[int(folder[0])] = int(found.group(1))
    except (tarfile.TarError, EOFError) as error:  # bzip2 errors reach here as tarfile.ReadError
        raise FeedDamaged(
            f"the Gutenberg download counts {source} are damaged ({error}); try again later or use another --gutenberg_mirror"
        ) from None
    return counts


# --- the cache: one file per feed and mirror ---


def _to_bytes(loaded: Catalog | DownloadCounts) -> bytes:
    """The counts as JSON; the catalog as a line of JSON (format, source, fetched_at, each column's length in bytes),
    then each column's rows joined by _SEPARATOR, in UTF-8, one after the other."""
    head = {"format": CACHE_FORMAT, "source": loaded.source, "fetched_at": loaded.fetched_at}
    if isinstance(loaded, DownloadCounts):
        ranked = loaded.ranked
        return json.dumps(head | {"ids": ranked, "counts": [loaded.counts[book_id] for book_id in ranked]}).encode()
    names = ("ids", *Catalog.DISPLAY, *(f"key:{field}" for field in KEY_FIELDS))
    data = [_SEPARATOR.join(map(str, loaded.ids)).encode()]
    data += [_SEPARATOR.join(loaded.column(name)).encode() for name in names[1:]]
    head["columns"] = [[name, len(column)] for name, column in zip(names, data)]
    return json.dumps(head, ensure_ascii=True).encode() + b"\n" + b"".join(data)


def _catalog_from_bytes(data: bytes) -> tuple[dict, Catalog]:
    end = data.find(b"\n")
    if end < 0:
        raise ValueError("it has no header line")
    head = json.loads(data[:end])
    columns, position = {}, end + 1
    for name, length in head["columns"]:
        columns[name] = data[position : position + length].decode("utf-8")
        position += length
    if position != len(data) or set(columns) != {"ids", *Catalog.DISPLAY, *(f"key:{field}" for field in KEY_FIELDS)}:
        raise ValueError("its columns are not those of this version, or it is cut short")
    catalog = Catalog(columns.pop("ids"), columns, source=head["source"], fetched_at=head["fetched_at"])
    catalog.ids  # the one column every query needs: a damaged one is found here
    return head, catalog


def _counts_from_bytes(data: bytes) -> tuple[dict, DownloadCounts]:
    saved = json.loads(data)
    if len(saved["ids"]) != len(saved["counts"]):
        raise ValueError("ids and counts differ in number")
    counts = DownloadCounts(dict(zip(saved["ids"], saved["counts"])), source=saved["source"], fetched_at=saved["fetched_at"])
    counts.__dict__["ranked"] = saved["ids"]  # saved in that order
    return saved, counts


def _read_cache(path: pathlib.Path, from_bytes, url: str, *, warn):
    """The cached feed at `path`, or None when there is none (or a damaged one, said in a note) or it is of another mirror."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        head, loaded = from_bytes(data)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, UnicodeDecodeError) as error:
        warn(f"note: the cached catalog file {path} cannot be read ({error}); fetching it again")
        return None
    return loaded if head.get("format") == CACHE_FORMAT and head.get("source") == url else None


# --- choosing books: a --books query -> ids, said with their titles ---

SHOWN_SELECTED = 20  # books listed by title when a query is resolved; books.py lists them all


def choose_books(
    text: str,
    source: CatalogSource,
    *,
    fetch_available: Callable[[list[int]], tuple[list, list]] | None = None,
    log: Callable[[str], None] = print,
) -> list[int]:
    """The ids the query `text` selects, listed with their titles through `log` before anything is downloaded.

    With top:N and `fetch_available` (sources.fetch_available_books, for --skip_missing_books), books the
    mirror does not have are named in a warning and the next most downloaded take their places, so the
    N most downloaded books that the mirror has are chosen.
    """
    query = book_queries.parse_query(text)
    catalog = source.catalog
    downloads = source.downloads if query.top else None
    ranked = catalog.select(dataclasses.replace(query, top=len(catalog.ids)) if query.top else query, downloads)
    chosen = ranked[: query.top] if query.top else ranked
    if not chosen:
        raise UserError(
            f"--books {text!r} selects no books from the Gutenberg catalog ({len(catalog.ids):,} books, fetched "
            f"{_when(catalog.fetched_at)}); check the spelling, or list what a query selects with python books.py QUERY"
        )
    log(f"--books {text!r} selects {len(chosen):,} book(s) of the Gutenberg catalog fetched {_when(catalog.fetched_at)}:")
    _log_books(chosen, catalog, log)
    if query.top and fetch_available:
        chosen = _fill_from_mirror(text, ranked, query.top, catalog, fetch_available, source.warn)
    return chosen


def _log_books(book_ids: list[int], catalog: Catalog, log) -> None:
    for book_id in book_ids[:SHOWN_SELECTED]:
        log(f"  {catalog.describe(book_id)}")
    if len(book_ids) > SHOWN_SELECTED:
        log(f"  ... and {len(book_ids) - SHOWN_SELECTED:,} more (python books.py lists them all)")


def _fill_from_mirror(text: str, ranked: list[int], wanted: int, catalog: Catalog, fetch_available, warn) -> list[int]:
    """The first `wanted` books of `ranked` that the mirror has, asking it in rank order, a shortfall at a time."""
    chosen, failures, position = [], [], 0
    while len(chosen) < wanted and position < len(ranked):
        batch = ranked[position : position + wanted - len(chosen)]
        position += len(batch)
        fetched, failed = fetch_available(batch)
        chosen += [book_id for book_id, _ in fetched]
        failures += failed
    if not chosen:
        raise UserError(f"none of the books --books {text!r} selects could be fetched:\n{sources.list_failures(failures)}")
    if failures:
        taken = [book_id for book_id in chosen if book_id not in ranked[:wanted]]
        lines = [f"  {catalog.describe(book_id)}" for book_id in taken]
        warn(
            f"warning: {len(failures):,} of the most downloaded books --books {text!r} selects could not be fetched "
            f"(--skip_missing_books):\n{sources.list_failures(failures)}\n"
            + (f"the next most downloaded take their places:\n" + "\n".join(lines) if taken else "no others are left to take their places")
        )
    return chosen


def list_books(book_ids: list[int], catalog: Catalog, downloads: Mapping[int, int], *, cached: Callable[[int], bool]) -> list[str]:
    """A line per book, under a heading: id, downloads, whether it is cached, languages, title and first author."""
    lines = [f"{'id':>6}  {'downloads':>9}  {'cached':6}  {'language':8}  title (first author)"]
    for book_id in book_ids:
        row = catalog.row_of.get(book_id)
        language = catalog.column("languages")[row] if row is not None else ""
        described = catalog.describe(book_id)
        lines.append(
            f"{described[:6]}  {downloads.get(book_id, 0):>9,}  {'yes' if cached(book_id) else 'no':6}  {language:8}  {described[8:]}"
        )
    return lines
