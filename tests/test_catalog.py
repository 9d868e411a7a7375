import bz2
import dataclasses
import gzip
import io
import json
import re
import tarfile

import pytest

import cli
from config import Config
from conftest import ok, status
from errors import UserError
from pipeline import catalog, sources
from test_book_queries import DOWNLOADS

FAST = {"timeout": 2.0, "backoff": 0.001}
CATALOG_PATH = "/cache/epub/feeds/pg_catalog.csv.gz"
RDF_PATH = "/cache/epub/feeds/rdf-files.tar.bz2"


@pytest.fixture(scope="module")
def feeds(gutenberg_mirror):
    """The test mirror's feeds as bytes: pg_catalog.csv, pg_catalog.csv.gz and rdf-files.tar.bz2."""
    directory = gutenberg_mirror / "cache/epub/feeds"
    return {name: (directory / name).read_bytes() for name in ("pg_catalog.csv", "pg_catalog.csv.gz", "rdf-files.tar.bz2")}


def source_of(mirror, tmp_path, **options):
    warnings = []
    source = catalog.CatalogSource(mirror=str(mirror), cache_dir=tmp_path, download_options=FAST, warn=warnings.append, **options)
    return source, warnings


def age_cache(tmp_path, name, days):
    """Makes the cached feed `name` ('catalog' or 'downloads') look fetched `days` ago."""
    (path,) = (tmp_path / "catalog").glob(f"{name}-*.cache")
    head, newline, columns = path.read_bytes().partition(b"\n")  # the catalog's columns follow a line of JSON
    saved = json.loads(head)
    saved["fetched_at"] -= days * catalog.SECONDS_PER_DAY
    path.write_bytes(json.dumps(saved).encode() + newline + columns)


@pytest.mark.parametrize("kind", ["directory", "file URL", "http"])
def test_catalog_and_download_counts_from_every_kind_of_mirror(gutenberg_mirror, http_mirror, tmp_path, kind):
    mirror = {"directory": gutenberg_mirror, "file URL": gutenberg_mirror.as_uri(), "http": http_mirror}[kind]
    source, warnings = source_of(mirror, tmp_path)
    books = source.catalog
    assert len(books.ids) == 26 and books.ids[:3] == [10, 11, 43]
    row = books.row_of[41445]
    assert books.column("titles")[row] == "Frankenstein; Or, The Modern Prometheus Volume 1"  # two lines in the feed
    assert books.column("first_authors")[books.row_of[2591]] == "Grimm, Jacob"
    assert books.column("first_authors")[books.row_of[10]] == ""  # the Bible has no author
    assert books.column("languages")[books.row_of[98]] == "en; fr"
    # The archive's stray cache/epub/test/pg11.rdf is not a book: every count comes from cache/epub/<id>/pg<id>.rdf.
    assert source.downloads.counts == DOWNLOADS
    assert warnings == []
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "catalog").iterdir()) == ["catalog", "downloads"]  # nothing else


def test_cached_catalog_is_used_until_it_is_older_than_max_age_or_refreshed(scripted_mirror, feeds, tmp_path):
    scripted_mirror.script[CATALOG_PATH] = [ok(feeds["pg_catalog.csv.gz"])]
    first, _ = source_of(scripted_mirror.url, tmp_path)
    assert len(first.catalog.ids) == 26
    again, _ = source_of(scripted_mirror.url, tmp_path, max_age_days=7)
    assert again.catalog.ids == first.catalog.ids
    assert scripted_mirror.requests[CATALOG_PATH] == 1  # from the cache

    age_cache(tmp_path, "catalog", days=8)
    stale, _ = source_of(scripted_mirror.url, tmp_path, max_age_days=7)
    assert len(stale.catalog.ids) == 26
    assert scripted_mirror.requests[CATALOG_PATH] == 2  # older than --catalog_max_age: fetched again

    refreshed, _ = source_of(scripted_mirror.url, tmp_path, refresh=True)
    assert len(refreshed.catalog.ids) == 26
    assert scripted_mirror.requests[CATALOG_PATH] == 3  # --refresh_catalog, however new the copy
    assert scripted_mirror.requests[RDF_PATH] == 0  # the download counts only when asked for


def test_offline_with_a_cached_copy_warns_and_uses_it(scripted_mirror, feeds, tmp_path):
    scripted_mirror.script[CATALOG_PATH] = [ok(feeds["pg_catalog.csv.gz"]), status(503)]
    scripted_mirror.script[RDF_PATH] = [ok(feeds["rdf-files.tar.bz2"]), status(503)]
    fetched, _ = source_of(scripted_mirror.url, tmp_path)
    assert fetched.catalog and fetched.downloads
    age_cache(tmp_path, "catalog", days=30)
    age_cache(tmp_path, "downloads", days=30)

    offline, warnings = source_of(scripted_mirror.url, tmp_path)
    assert offline.catalog.ids == fetched.catalog.ids
    assert offline.downloads.counts == DOWNLOADS
    assert len(warnings) == 2
    assert re.fullmatch(
        r"warning: the Gutenberg catalog could not be downloaded from http://\S+/pg_catalog.csv.gz: the server answered 503 "
        r"Service Unavailable, 3 times; try again later or use another --gutenberg_mirror; using the copy cached "
        r"\d{4}-\d\d-\d\d \d\d:\d\d UTC \(30.0 days old\)",
        warnings[0],
    )
    assert warnings[1].startswith("warning: the Gutenberg download counts could not be downloaded from")


def test_offline_without_a_cached_copy_is_one_clear_error(tmp_path):
    source, _ = source_of("http://127.0.0.1:9", tmp_path)  # nothing listens on port 9 (discard)
    with pytest.raises(UserError) as raised:
        source.catalog
    assert re.fullmatch(
        r"the Gutenberg catalog could not be downloaded from http://127.0.0.1:9/cache/epub/feeds/pg_catalog.csv.gz: "
        r"cannot reach the server \(.*\), 3 times; try again later or use another --gutenberg_mirror\. No copy of "
        rf"the Gutenberg catalog is cached in {tmp_path}/catalog either, so a --books query cannot be answered: give ebook "
        r"ids instead, or try again once the mirror can be reached",
        str(raised.value),
    )


def test_mirror_without_feeds_says_so(gutenberg_mirror, tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "cache/epub").mkdir(parents=True)
    source, _ = source_of(mirror, tmp_path / "cache")
    with pytest.raises(UserError, match=r"the Gutenberg catalog is not in the mirror directory: \S+/pg_catalog.csv.gz "
                                         r"does not exist; this mirror has no catalog feed; give ebook ids instead of a query"):
        source.catalog


def test_truncated_gzip_is_a_clear_error_naming_the_file(scripted_mirror, feeds, tmp_path):
    scripted_mirror.script[CATALOG_PATH] = [ok(feeds["pg_catalog.csv.gz"][:-200])]
    source, _ = source_of(scripted_mirror.url, tmp_path)
    with pytest.raises(UserError, match=r"the Gutenberg catalog http://\S+/cache/epub/feeds/pg_catalog.csv.gz is damaged "
                                         r"\(Compressed file ended before the end-of-stream marker was reached\)"):
        source.catalog
    assert scripted_mirror.requests[CATALOG_PATH] == 1  # a damaged file is not a network failure: no retry


def test_csv_with_a_changed_header_is_a_clear_error_naming_the_file(scripted_mirror, feeds, tmp_path):
    changed = feeds["pg_catalog.csv"].replace(b",Authors,", b",Creators,", 1)
    scripted_mirror.script[CATALOG_PATH] = [ok(gzip.compress(changed))]
    source, _ = source_of(scripted_mirror.url, tmp_path)
    with pytest.raises(UserError, match=r"the Gutenberg catalog http://\S+/pg_catalog.csv.gz does not have the columns "
                                         r"charbook reads \(Authors missing; its header is 'Text#,Type,Issued,Title,"
                                         r"Language,Creators,Subjects,LoCC,Bookshelves'\): the feed's layout has changed"):
        source.catalog


def test_damaged_rdf_archive_is_a_clear_error_naming_the_file(scripted_mirror, feeds, tmp_path):
    scripted_mirror.script[RDF_PATH] = [ok(feeds["rdf-files.tar.bz2"][:-500])]
    source, _ = source_of(scripted_mirror.url, tmp_path)
    with pytest.raises(UserError, match=r"the Gutenberg download counts http://\S+/rdf-files.tar.bz2 are damaged"):
        source.downloads


def tar_bz2(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:bz2") as archive:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def test_download_counts_are_read_as_the_archive_streams_past(feeds):
    class OneWay(io.RawIOBase):  # no seek, no tell: like a socket
        def __init__(self, data):
            self.data = io.BytesIO(data)

        def readinto(self, buffer):
            return self.data.readinto(buffer)

        def readable(self):
            return True

    assert catalog.read_download_counts(OneWay(feeds["rdf-files.tar.bz2"]), source="test") == DOWNLOADS
    # A stray folder that is not an ebook number is skipped, even with a count in it; a file without one too.
    stray = tar_bz2({
        "cache/epub/test/pg11.rdf": b'<pgterms:downloads rdf:datatype="x">5</pgterms:downloads>',
        "cache/epub/11/pg11.rdf": b'<pgterms:downloads rdf:datatype="x">\n  32144\n</pgterms:downloads>',
        "cache/epub/12/pg12.rdf": b"<rdf:RDF/>",
    })
    assert catalog.read_download_counts(OneWay(stray), source="test") == {11: 32144}
    with pytest.raises(catalog.FeedDamaged, match="the Gutenberg download counts test are damaged"):
        catalog.read_download_counts(io.BytesIO(bz2.compress(b"not a tar archive" * 100)), source="test")


def test_damaged_cache_file_is_fetched_again_with_a_note(gutenberg_mirror, tmp_path):
    source, _ = source_of(gutenberg_mirror, tmp_path)
    assert source.catalog
    (path,) = (tmp_path / "catalog").glob("catalog-*.cache")
    path.write_bytes(path.read_bytes()[:-100])
    again, warnings = source_of(gutenberg_mirror, tmp_path)
    assert again.catalog.ids == source.catalog.ids
    assert warnings == [f"note: the cached catalog file {path} cannot be read (its columns are not those of this version, "
                        f"or it is cut short); fetching it again"]


# --- choosing books for --books ---


def test_chosen_books_are_listed_with_their_titles(gutenberg_mirror, tmp_path):
    source, _ = source_of(gutenberg_mirror, tmp_path)
    lines = []
    assert catalog.choose_books("author:lovecraft", source, log=lines.append) == [31469, 50133]
    assert lines[1:] == [
        "   31469  The Shunned House (Lovecraft, H. P. (Howard Phillips))",
        "   50133  The Dunwich Horror (Lovecraft, H. P. (Howard Phillips))",
    ]
    assert lines[0].startswith("--books 'author:lovecraft' selects 2 book(s) of the Gutenberg catalog fetched ")
    assert not list((tmp_path / "catalog").glob("downloads-*"))  # no top:, so no RDF archive


def test_top_with_skip_missing_books_takes_the_next_most_downloaded_the_mirror_has(gutenberg_mirror, tmp_path):
    source, warnings = source_of(gutenberg_mirror, tmp_path / "cache")

    def fetch_available(ids):
        return sources.fetch_available_books(ids, mirror=str(gutenberg_mirror), cache_dir=tmp_path / "cache", progress_stream=io.StringIO())

    lines = []
    chosen = catalog.choose_books("lang:en top:6", source, fetch_available=fetch_available, log=lines.append)
    # 64317 (The Great Gatsby) and 345 (Dracula) rank sixth and seventh, but the test mirror lacks them.
    assert chosen == [84, 1342, 2701, 11, 1661, 174]
    assert [line.split()[0] for line in lines[1:]] == ["84", "1342", "2701", "11", "1661", "64317"]  # before any download
    (warning,) = warnings
    assert warning.startswith("warning: 2 of the most downloaded books --books 'lang:en top:6' selects could not be fetched")
    assert "Gutenberg book 64317 is not in the mirror directory" in warning and "Gutenberg book 345 " in warning
    assert warning.endswith("the next most downloaded take their places:\n     174  The Picture of Dorian Gray (Wilde, Oscar)")
    top3 = catalog.choose_books("lang:en top:3", source, fetch_available=fetch_available, log=lines.append)
    assert top3 == [84, 1342, 2701]


def test_query_selecting_nothing_is_an_error(gutenberg_mirror, tmp_path):
    source, _ = source_of(gutenberg_mirror, tmp_path)
    with pytest.raises(UserError, match=r"--books 'author:tolkien' selects no books from the Gutenberg catalog \(26 books"):
        catalog.choose_books("author:tolkien", source)


def test_resolved_books_and_the_query_go_into_the_config(gutenberg_mirror, tmp_path, capsys):
    cfg = Config(gutenberg_mirror=str(gutenberg_mirror), cache_dir=str(tmp_path))
    resolved = cli.resolve_books('author:lovecraft, shelf:"gothic fiction" top:2,2701', cfg)
    assert resolved.books == (31469, 50133, 84, 345, 2701)
    assert resolved.books_query == 'author:lovecraft, shelf:"gothic fiction" top:2,2701'
    assert Config.from_json_dict(json.loads(resolved.to_json())) == resolved  # as the export keeps it
    assert "   50133  The Dunwich Horror" in capsys.readouterr().out
    by_id = cli.resolve_books("84,1342", dataclasses.replace(resolved, gutenberg_mirror="http://127.0.0.1:9"))
    assert (by_id.books, by_id.books_query) == ((84, 1342), "")  # ids need no catalog
