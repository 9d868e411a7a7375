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
CACHE_FORMAT = 1
SECONDS_PER_DAY = 86_400

# The cache keeps each column as one string, rows joined by this (a control character no catalog field holds):
# a few long JSON strings load many times faster than 90,000 short ones each.
_SEPARATOR = "\x1f"
# pgterms:downloads is one short element near the top of each RDF file; a regular expression over the bytes finds
# it far faster than an XML parser would build the whole tree of the 75,000 files (bench/README.md).
_DOWNLOADS = re.compile(rb"<pgterms:downloads[^>]*>\s*(\d+)\s*</pgterms:downloads>")
_ROLE = re.compile(r"\s*\[([^\]]*)\]\s*$")  # "Hunt, Margaret, 1831-1912 [Translator]"


class FeedDamaged(UserError):
    """A feed came whole from the mirror but cannot be read: cut short, not gzip or bzip2, another layout."""


@dataclasses.dataclass(frozen=True)
class Catalog:
    """The catalog's rows, in the feed's order: what listings show, and the folded columns queries match."""

    ids: list[int]
    titles: list[str]  # white space as single spaces (a few titles run over several lines)
    first_authors: list[str]  # the first author's name without life dates or role; "" for none
    languages: list[str]  # "en; fr"
    keys: dict[str, list[str]]  # folded columns of book_queries.TEXT_FIELDS and CODE_FIELDS
    source: str  # the feed's URL
    fetched_at: float  # seconds since the epoch

    def select(self, query: book_queries.Query, downloads: Mapping[int, int] | None = None) -> list[int]:
        return book_queries.select_books(query, self.keys, self.ids, downloads)

    @functools.cached_property
    def row_of(self) -> dict[int, int]:
        return {book_id: row for row, book_id in enumerate(self.ids)}

    def describe(self, book_id: int) -> str:
        """'84  Frankenstein; Or, The Modern Prometheus (Shelley, Mary Wollstonecraft)', or just the id if not listed."""
        row = self.row_of.get(book_id)
        if row is None:
            return f"{book_id:>6}  (not in the catalog)"
        author = f" ({self.first_authors[row]})" if self.first_authors[row] else ""
        return f"{book_id:>6}  {self.titles[row]}{author}"


@dataclasses.dataclass(frozen=True)
class DownloadCounts:
    counts: dict[int, int]  # ebook id -> downloads in the last 30 days
    source: str
    fetched_at: float


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
        return self._load(CATALOG_FEED, "the Gutenberg catalog", "catalog", _fetch_catalog, _catalog_from_json)

    @functools.cached_property
    def downloads(self) -> DownloadCounts:
        return self._load(RDF_FEED, "the Gutenberg download counts", "downloads", _fetch_download_counts, _counts_from_json)

    def _load(self, feed: str, what: str, name: str, fetch, from_json):
        url = feed_url(self.mirror, feed)
        path = pathlib.Path(self.cache_dir) / "catalog" / f"{name}-{hashlib.sha256(url.encode()).hexdigest()[:12]}.json"
        cached = _read_cache(path, from_json, url, warn=self.warn)
        age_days = (time.time() - cached.fetched_at) / SECONDS_PER_DAY if cached else None
        if cached and not self.refresh and age_days <= self.max_age_days:
            return cached
        try:
            fresh = fetch(url, what=what, **self.download_options)
        except UserError as error:  # offline, a mirror without feeds, a damaged feed
            if cached is None:
                raise UserError(
                    f"{error}. No copy of {what.removeprefix('the ')} is cached in {path.parent} either, so a --books "
                    "query cannot be answered: give ebook ids instead, or try again once the mirror can be reached"
                ) from None
            self.warn(f"warning: {error}; using the copy cached {_when(cached.fetched_at)} ({age_days:.1f} days old)")
            return cached
        write_file_atomically(path, json.dumps(_to_json(fresh), ensure_ascii=False).encode("utf-8"))
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
    reader = csv.reader(io.StringIO(text, newline=""))  # the csv module reads quoted fields that span lines
    header = next(reader, [])
    missing = [column for column in COLUMNS if column not in header]
    if missing:
        raise FeedDamaged(
            f"the Gutenberg catalog {source} does not have the columns charbook reads ({', '.join(missing)} missing; "
            f"its header is {','.join(header)[:200]!r}): the feed's layout has changed, or it is not the catalog; "
            "use another --gutenberg_mirror, or give ebook ids instead of a query"
        )
    at = {column: header.index(column) for column in COLUMNS}
    ids, titles, first_authors, languages = [], [], [], []
    keys = {field: [] for field in (*book_queries.TEXT_FIELDS, *book_queries.CODE_FIELDS)}
    for row in reader:
        if not row:
            continue
        try:
            book_id = int(row[at["Text#"]])
            values = {column: row[at[column]] for column in COLUMNS}
        except (ValueError, IndexError):
            raise FeedDamaged(
                f"the Gutenberg catalog {source} is damaged at line {reader.line_num} ({','.join(row)[:80]!r}); "
                "try again later or use another --gutenberg_mirror"
            ) from None
        first_author, author_key = _authors(values["Authors"])
        ids.append(book_id)
        titles.append(" ".join(values["Title"].split()))
        first_authors.append(first_author)
        languages.append(values["Language"])
        keys["author"].append(author_key)
        keys["title"].append(book_queries.search_key(values["Title"]))
        keys["subject"].append(book_queries.search_key(values["Subjects"]))
        keys["shelf"].append(book_queries.search_key(values["Bookshelves"]))
        keys["lang"].append(book_queries.code_key(values["Language"].split(";")))
        keys["type"].append(book_queries.code_key([values["Type"]]))
    return Catalog(ids, titles, first_authors, languages, keys, source=source, fetched_at=fetched_at)


def _authors(field: str) -> tuple[str, str]:
    """(first author's name, folded key of every author) of an Authors field; translators, editors and the like
    (a role in brackets) are not authors.

    'Grimm, Jacob, 1785-1863; Hunt, Margaret, 1831-1912 [Translator]' -> ('Grimm, Jacob', 'grimm, jacob\\njacob grimm')
    """
    authors, others = [], []
    for person in filter(None, (person.strip() for person in field.split(";"))):
        role = _ROLE.search(person)
        parts = [part.strip() for part in _ROLE.sub("", person).split(",")]
        if len(parts) > 1 and any(c.isdigit() for c in parts[-1]):  # life dates: "1775-1817", "428? BCE-348? BCE"
            parts.pop()
        (others if role and role.group(1).lower() != "author" else authors).append(parts)
    names = authors or others
    key = "\n".join(
        f"{book_queries.search_key(', '.join(parts))}\n{book_queries.search_key(' '.join(parts[1:2] + parts[:1]))}"
        for parts in authors
    )  # "austen, jane" and "jane austen"; "\n" keeps a search from running from one name into the next
    return (", ".join(names[0]) if names else ""), key


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


# --- the cache: one JSON file per feed and mirror ---


def _to_json(loaded: Catalog | DownloadCounts) -> dict:
    head = {"format": CACHE_FORMAT, "source": loaded.source, "fetched_at": loaded.fetched_at}
    if isinstance(loaded, DownloadCounts):
        return head | {"ids": list(loaded.counts), "counts": list(loaded.counts.values())}
    columns = {"titles": loaded.titles, "first_authors": loaded.first_authors, "languages": loaded.languages}
    return head | {
        "ids": loaded.ids,
        "columns": {name: _SEPARATOR.join(column) for name, column in columns.items()},
        "keys": {name: _SEPARATOR.join(column) for name, column in loaded.keys.items()},
    }


def _catalog_from_json(saved: dict) -> Catalog:
    ids = saved["ids"]
    columns = {name: _split(text, len(ids)) for name, text in saved["columns"].items()}
    keys = {name: _split(text, len(ids)) for name, text in saved["keys"].items()}
    if set(keys) != {*book_queries.TEXT_FIELDS, *book_queries.CODE_FIELDS}:
        raise ValueError("the query fields differ")
    return Catalog(ids, **columns, keys=keys, source=saved["source"], fetched_at=saved["fetched_at"])


def _counts_from_json(saved: dict) -> DownloadCounts:
    if len(saved["ids"]) != len(saved["counts"]):
        raise ValueError("ids and counts differ in number")
    return DownloadCounts(dict(zip(saved["ids"], saved["counts"])), source=saved["source"], fetched_at=saved["fetched_at"])


def _split(text: str, rows: int) -> list[str]:
    column = text.split(_SEPARATOR) if rows else []
    if len(column) != rows:
        raise ValueError(f"a column has {len(column)} rows, not {rows}")
    return column


def _read_cache(path: pathlib.Path, from_json, url: str, *, warn):
    """The cached feed at `path`, or None when there is none (or a damaged one, said in a note) or it is of another mirror."""
    try:
        saved = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        warn(f"note: the cached catalog file {path} cannot be read ({error}); fetching it again")
        return None
    try:
        if saved.get("format") != CACHE_FORMAT or saved.get("source") != url:
            return None
        return from_json(saved)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        warn(f"note: the cached catalog file {path} is damaged ({error!r}); fetching it again")
        return None


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
    downloads = source.downloads.counts if query.top else None
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
        language = catalog.languages[row] if row is not None else ""
        described = catalog.describe(book_id)
        lines.append(
            f"{described[:6]}  {downloads.get(book_id, 0):>9,}  {'yes' if cached(book_id) else 'no':6}  {language:8}  {described[8:]}"
        )
    return lines
