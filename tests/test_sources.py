import hashlib
import io
import re
import subprocess
import sys
import threading

import pytest

from conftest import PROJECT_ROOT, cut_short, html_page, ok, redirect, stall, status
from errors import UserError
from pipeline import sources

FAST = dict(timeout=2.0, backoff=0.001)  # keeps retries quick; the slow-server case lowers the timeout further


BOOK = b"*** START OF THE PROJECT GUTENBERG EBOOK FIVE ***\nFive little words.\n"


def test_book_url_follows_the_gutenberg_layout(tmp_path):
    assert (
        sources.gutenberg_book_url(84, mirror="https://www.gutenberg.org/")
        == "https://www.gutenberg.org/cache/epub/84/pg84.txt"
    )
    assert sources.gutenberg_book_url(84, mirror=str(tmp_path)) == f"file://{tmp_path}/cache/epub/84/pg84.txt"


@pytest.mark.parametrize("as_url", [False, True])
def test_book_from_a_local_mirror_directory_or_file_url(gutenberg_mirror, tmp_path, as_url):
    mirror = gutenberg_mirror.as_uri() if as_url else str(gutenberg_mirror)
    raw = sources.load_gutenberg_book(84, mirror=mirror, cache_dir=tmp_path)
    assert raw == (gutenberg_mirror / "cache/epub/84/pg84.txt").read_bytes()
    assert (tmp_path / "gutenberg" / "pg84.txt").read_bytes() == raw


def test_book_downloaded_over_http_is_cached_with_its_checksum_and_then_needs_no_network(http_mirror, gutenberg_mirror, tmp_path):
    first = sources.load_gutenberg_book(11, mirror=http_mirror, cache_dir=tmp_path)
    assert first == (gutenberg_mirror / "cache/epub/11/pg11.txt").read_bytes()
    # The checksum file is in sha256sum's format, so `sha256sum -c pg11.txt.sha256` checks it too.
    checksum_file = tmp_path / "gutenberg" / "pg11.txt.sha256"
    assert checksum_file.read_text() == f"{hashlib.sha256(first).hexdigest()}  pg11.txt\n"
    # Nothing listens on port 9 (discard): only the cache can answer now.
    again = sources.load_gutenberg_book(11, mirror="http://127.0.0.1:9", cache_dir=tmp_path)
    assert again == first
    assert sorted(p.name for p in (tmp_path / "gutenberg").iterdir()) == ["pg11.txt", "pg11.txt.sha256"]  # no temporary files


@pytest.mark.parametrize(
    "responses, requests, error",
    [
        ([status(404)], 1, r"Gutenberg book 5 is not on the mirror \(http://\S+/pg5.txt answered 404 Not Found\); check the id"),
        ([status(410)], 1, r"Gutenberg book 5 is not on the mirror .*410"),
        ([status(500)], 3, r"Gutenberg book 5 could not be downloaded from http://\S+/pg5.txt: the server answered 500 "
                           r"Internal Server Error, 3 times; try again later or use another --gutenberg_mirror"),
        ([status(503)], 3, r"answered 503"),
        ([status(403)], 1, r"from http://\S+/pg5.txt: the server answered 403 Forbidden; try another --gutenberg_mirror"),
        ([cut_short(b"only ten b", 1000)], 3, r"the download was cut short \(10 of 1,000 bytes\), 3 times"),
        ([html_page], 1, r"the mirror sent a web page, not the book's plain text"),
    ],
)
def test_download_failures_name_the_book_and_what_to_do(scripted_mirror, tmp_path, responses, requests, error):
    scripted_mirror.book(5, *responses)
    with pytest.raises(UserError, match=error):
        sources.load_gutenberg_book(5, mirror=scripted_mirror.url, cache_dir=tmp_path, **FAST)
    assert scripted_mirror.requests_for(5) == requests
    assert not (tmp_path / "gutenberg").exists() or not list((tmp_path / "gutenberg").iterdir())  # nothing cached


@pytest.mark.parametrize("after_headers", [False, True])
def test_server_slower_than_the_timeout_is_given_up_on(scripted_mirror, tmp_path, after_headers):
    scripted_mirror.book(5, stall(scripted_mirror.released, BOOK, after_headers=after_headers))
    with pytest.raises(UserError, match=r"Gutenberg book 5 .*no answer within --download_timeout=0.05 seconds, 2 times"):
        sources.load_gutenberg_book(5, mirror=scripted_mirror.url, cache_dir=tmp_path, timeout=0.05, attempts=2, backoff=0.001)
    assert scripted_mirror.requests_for(5) == 2
    assert not (tmp_path / "gutenberg" / "pg5.txt").exists()


@pytest.mark.parametrize(
    "responses",
    [
        [status(500), status(502), ok(BOOK)],  # transient server errors pass on the third attempt
        [cut_short(BOOK[:10], len(BOOK)), ok(BOOK)],
        [redirect(302, "/files/5/5-0.txt")],
        [redirect(301, "/files/5/5-0.txt")],
    ],
)
def test_retries_and_redirects_end_in_the_whole_book(scripted_mirror, tmp_path, responses):
    scripted_mirror.book(5, *responses)
    scripted_mirror.script["/files/5/5-0.txt"] = [ok(BOOK)]
    assert sources.load_gutenberg_book(5, mirror=scripted_mirror.url, cache_dir=tmp_path, **FAST) == BOOK
    assert sources.cache_entry_problem(tmp_path / "gutenberg" / "pg5.txt") is None


def test_retries_wait_twice_as_long_each_time(scripted_mirror):
    scripted_mirror.book(5, status(500))
    waits = []

    class RecordingStop(threading.Event):
        def wait(self, timeout=None):
            waits.append(timeout)
            return False

    with pytest.raises(UserError):
        sources._download_book(5, f"{scripted_mirror.url}/cache/epub/5/pg5.txt", timeout=2, attempts=4, backoff=0.001, stop=RecordingStop())
    assert waits == [0.001, 0.002, 0.004]


def test_book_missing_from_a_mirror_directory_names_the_path_looked_at(gutenberg_mirror, tmp_path):
    expected = gutenberg_mirror.resolve() / "cache/epub/999999/pg999999.txt"
    with pytest.raises(UserError, match=f"Gutenberg book 999999 is not in the mirror directory: {expected} does not exist; check the id"):
        sources.load_gutenberg_book(999999, mirror=str(gutenberg_mirror), cache_dir=tmp_path)


def test_mirror_directory_that_does_not_exist_is_named(tmp_path):
    with pytest.raises(UserError, match=f"Gutenberg book 84: the --gutenberg_mirror directory {tmp_path / 'nowhere'} does not exist"):
        sources.load_gutenberg_book(84, mirror=(tmp_path / "nowhere").as_uri(), cache_dir=tmp_path / "cache")


@pytest.mark.parametrize(
    "damage, notice",
    [
        (lambda book, checksum: book.write_bytes(book.read_bytes()[:-100]), "does not match its SHA-256 checksum"),
        (lambda book, checksum: book.write_bytes(book.read_bytes().replace(b"Alice", b"Alica", 1)), "does not match its SHA-256"),
        (lambda book, checksum: checksum.unlink(), "has no checksum file"),
        (lambda book, checksum: checksum.write_text(""), "has a damaged checksum file"),
    ],
)
def test_damaged_cache_entry_is_fetched_again_with_a_notice(gutenberg_mirror, tmp_path, capsys, damage, notice):
    original = sources.load_gutenberg_book(11, mirror=str(gutenberg_mirror), cache_dir=tmp_path)
    book = tmp_path / "gutenberg" / "pg11.txt"
    damage(book, tmp_path / "gutenberg" / "pg11.txt.sha256")
    capsys.readouterr()

    assert sources.load_gutenberg_book(11, mirror=str(gutenberg_mirror), cache_dir=tmp_path) == original

    notice_line = capsys.readouterr().err
    assert notice_line.startswith(f"note: the cached copy of Gutenberg book 11 ({book}) {notice}")
    assert notice_line.endswith("; fetching it again\n") and notice_line.count("\n") == 1
    assert sources.cache_entry_problem(book) is None


# --- many books at once ---


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_many_books_download_in_parallel_in_the_order_given(http_mirror, gutenberg_mirror, tmp_path):
    ids = [2701, 11, 84, 1342, 174, 1661]
    progress = io.StringIO()
    fetched = sources.fetch_gutenberg_books(
        ids, mirror=http_mirror, cache_dir=tmp_path, workers=4, progress_stream=progress, **FAST
    )

    assert [book_id for book_id, _ in fetched] == ids
    for book_id, path in fetched:
        assert path.read_bytes() == (gutenberg_mirror / f"cache/epub/{book_id}/pg{book_id}.txt").read_bytes()
    total_mb = sum(path.stat().st_size for _, path in fetched) / 1e6
    assert progress.getvalue().splitlines()[-1] == f"books 6/6: 6 downloaded ({total_mb:.1f} MB), 0 from the cache, 0 failed"

    quiet = io.StringIO()
    sources.fetch_gutenberg_books(ids, mirror="http://127.0.0.1:9", cache_dir=tmp_path, progress_stream=quiet)
    assert quiet.getvalue() == ""  # all from the cache: nothing to report


def test_downloads_really_overlap(scripted_mirror, tmp_path):
    # Each answer waits until four requests are in flight at once, which only parallel downloads achieve.
    all_four_asked = threading.Barrier(4, timeout=5)

    def together(handler):
        all_four_asked.wait()
        ok(BOOK)(handler)

    for book_id in (1, 2, 3, 4):
        scripted_mirror.book(book_id, together)
    fetched = sources.fetch_gutenberg_books(
        [1, 2, 3, 4], mirror=scripted_mirror.url, cache_dir=tmp_path, workers=4, attempts=1, timeout=10, progress_stream=io.StringIO()
    )
    assert [path.read_bytes() for _, path in fetched] == [BOOK] * 4


def test_progress_on_a_terminal_is_one_line_rewritten_in_place(scripted_mirror, tmp_path):
    for book_id in (1, 2, 3):
        scripted_mirror.book(book_id, ok(BOOK))
    terminal = Terminal()
    sources.fetch_gutenberg_books(
        [1, 2, 3], mirror=scripted_mirror.url, cache_dir=tmp_path, workers=1, progress_stream=terminal, **FAST
    )
    output = terminal.getvalue()
    assert output.count("\n") == 1 and output.endswith("\n")
    assert output.count("\r\x1b[K") == 3  # once after each book
    assert "books 3/3: 3 downloaded (0.0 MB), 0 from the cache, 0 failed\n" in output

    # A notice takes the progress line's place, which is then drawn again below it.
    (tmp_path / "gutenberg" / "pg1.txt").unlink()
    (tmp_path / "gutenberg" / "pg2.txt").write_bytes(b"damaged")
    terminal = Terminal()
    sources.fetch_gutenberg_books(
        [1, 2, 3], mirror=scripted_mirror.url, cache_dir=tmp_path, workers=1, progress_stream=terminal, **FAST
    )
    # Books are fetched on a worker thread, so the note may come before or after the line for book 1.
    output = terminal.getvalue()
    assert re.search(r"(^|\r\x1b\[K)note: the cached copy of Gutenberg book 2 [^\n]*; fetching it again\n", output)
    assert terminal.getvalue().endswith("\r\x1b[Kbooks 3/3: 2 downloaded (0.0 MB), 1 from the cache, 0 failed\n")


def test_progress_in_a_log_file_is_an_occasional_line(scripted_mirror, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "PROGRESS_INTERVAL_SECONDS", 0.0)  # as if each book took longer than the interval
    for book_id in (1, 2):
        scripted_mirror.book(book_id, ok(BOOK))
    log = io.StringIO()
    sources.fetch_gutenberg_books([1, 2], mirror=scripted_mirror.url, cache_dir=tmp_path, workers=1, progress_stream=log, **FAST)
    assert log.getvalue() == (
        "books 1/2: 1 downloaded (0.0 MB), 0 from the cache, 0 failed\n"
        "books 2/2: 2 downloaded (0.0 MB), 0 from the cache, 0 failed\n"
    )


def test_every_book_is_tried_and_every_failure_listed(scripted_mirror, tmp_path):
    scripted_mirror.book(1, ok(BOOK))
    scripted_mirror.book(3, status(500))
    scripted_mirror.book(4, ok(BOOK))
    progress = io.StringIO()
    with pytest.raises(UserError) as raised:
        sources.fetch_gutenberg_books([1, 2, 3, 4], mirror=scripted_mirror.url, cache_dir=tmp_path, progress_stream=progress, **FAST)

    message = str(raised.value)
    assert message.startswith("2 of 4 Gutenberg books could not be fetched:\n")
    assert message.index("Gutenberg book 2 is not on the mirror") < message.index("Gutenberg book 3 could not be downloaded")
    assert message.endswith("Fix or drop those ids, or pass --skip_missing_books to go on without them")
    assert sources.cache_entry_problem(tmp_path / "gutenberg" / "pg4.txt") is None  # the good books are kept
    assert progress.getvalue().splitlines()[-1] == "books 4/4: 2 downloaded (0.0 MB), 0 from the cache, 2 failed"


def test_skip_missing_books_warns_and_goes_on_with_the_rest(scripted_mirror, tmp_path):
    scripted_mirror.book(1, ok(BOOK))
    scripted_mirror.book(3, ok(BOOK))
    progress = io.StringIO()
    fetched = sources.fetch_gutenberg_books(
        [1, 2, 3, 4], mirror=scripted_mirror.url, cache_dir=tmp_path, skip_missing=True, progress_stream=progress, **FAST
    )
    assert [book_id for book_id, _ in fetched] == [1, 3]
    warning = progress.getvalue().split("warning: ")[1].splitlines()
    assert warning[0] == "2 of 4 Gutenberg books could not be fetched; going on without them (--skip_missing_books):"
    assert warning[1].startswith("  Gutenberg book 2 is not on the mirror")
    assert warning[2].startswith("  Gutenberg book 4 is not on the mirror")
    assert len(warning) == 3 and all(line.endswith("; check the id") for line in warning[1:])

    with pytest.raises(UserError) as raised:
        sources.fetch_gutenberg_books([2, 4], mirror=scripted_mirror.url, cache_dir=tmp_path, skip_missing=True, progress_stream=progress, **FAST)
    assert str(raised.value).startswith("none of the 2 Gutenberg books could be fetched, so there is no text to use:\n  Gutenberg book 2 ")


@pytest.fixture
def sparse_mirror(tmp_path):
    """A mirror directory holding books 3 and 7 only, as a mirror lacking most of --books=1-5000 would."""
    for book_id in (3, 7):
        book_dir = tmp_path / "mirror" / "cache" / "epub" / str(book_id)
        book_dir.mkdir(parents=True)
        (book_dir / f"pg{book_id}.txt").write_bytes(BOOK)
    return str(tmp_path / "mirror")


FIRST_TEN_MISSING = [1, 2, 4, 5, 6, 8, 9, 10, 11, 12]


def test_thousands_of_failures_show_the_first_ten_and_a_count(sparse_mirror, tmp_path):
    with pytest.raises(UserError) as raised:
        sources.fetch_gutenberg_books(range(1, 5001), mirror=sparse_mirror, cache_dir=tmp_path / "cache", progress_stream=io.StringIO())

    lines = str(raised.value).splitlines()
    assert lines[0] == "4,998 of 5,000 Gutenberg books could not be fetched:"
    assert [line.split(" is not in the mirror directory: ")[0] for line in lines[1:11]] == [
        f"  Gutenberg book {book_id}" for book_id in FIRST_TEN_MISSING
    ]
    assert lines[1].endswith("/cache/epub/1/pg1.txt does not exist; check the id or --gutenberg_mirror")
    assert lines[11:] == ["  ... and 4,988 more", "Fix or drop those ids, or pass --skip_missing_books to go on without them"]


def test_thousands_of_skipped_books_are_one_short_warning(sparse_mirror, tmp_path):
    progress = io.StringIO()
    fetched = sources.fetch_gutenberg_books(
        range(1, 5001), mirror=sparse_mirror, cache_dir=tmp_path / "cache", skip_missing=True, progress_stream=progress
    )

    assert [book_id for book_id, _ in fetched] == [3, 7]
    output = progress.getvalue().splitlines()
    header = "warning: 4,998 of 5,000 Gutenberg books could not be fetched; going on without them (--skip_missing_books):"
    warning = output[output.index(header) + 1 :]
    assert [line.split(" is not in the mirror directory: ")[0] for line in warning[:10]] == [
        f"  Gutenberg book {book_id}" for book_id in FIRST_TEN_MISSING
    ]
    assert warning[10:] == ["  ... and 4,988 more"]


def test_a_cache_that_cannot_be_written_stops_everything_with_the_os_error(gutenberg_mirror, tmp_path):
    (tmp_path / "not_a_directory").write_text("")
    with pytest.raises(OSError):  # cli.run reports it in one line; it is no reason to skip a book
        sources.fetch_gutenberg_books([11, 84], mirror=str(gutenberg_mirror), cache_dir=tmp_path / "not_a_directory", skip_missing=True)


# --- --books ---


def test_books_flag_takes_ranges_and_files_and_refuses_typos(tmp_path):
    (tmp_path / "ids.txt").write_text("84\n")
    # One process (TensorFlow's import is slow): the flag as given, then a typo in it.
    script = (
        "import cli\n"
        "cli.define_config_flags('data')\n"
        "def main(argv):\n"
        "    print(cli.config_from_flags('data').books)\n"
        "    cli.FLAGS.books = '5-3'\n"
        "    cli.config_from_flags('data')\n"
        "cli.run(main)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, f"--books=1-3,@{tmp_path / 'ids.txt'}"], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert result.stdout == "(1, 2, 3, 84)\n"
    assert result.stderr == "error: --books: the range '5-3' runs backwards; write 3-5\n"
    assert result.returncode == 2
