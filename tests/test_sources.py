import functools
import http.server
import threading

import pytest

from errors import UserError
from pipeline import sources


@pytest.fixture
def http_mirror(gutenberg_mirror):
    """The local mirror served over HTTP on 127.0.0.1, as gutenberg.org would serve it."""
    handler = functools.partial(QuietHandler, directory=str(gutenberg_mirror))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


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


def test_book_downloaded_over_http_is_cached_and_then_needs_no_network(http_mirror, gutenberg_mirror, tmp_path):
    first = sources.load_gutenberg_book(11, mirror=http_mirror, cache_dir=tmp_path)
    assert first == (gutenberg_mirror / "cache/epub/11/pg11.txt").read_bytes()
    # Nothing listens on port 9 (discard): only the cache can answer now.
    again = sources.load_gutenberg_book(11, mirror="http://127.0.0.1:9", cache_dir=tmp_path)
    assert again == first
    assert [p.name for p in (tmp_path / "gutenberg").iterdir()] == ["pg11.txt"]  # no temporary files left


def test_book_missing_from_the_http_mirror_is_named(http_mirror, tmp_path):
    with pytest.raises(UserError, match="Gutenberg book 999999 is not on the mirror.*404"):
        sources.load_gutenberg_book(999999, mirror=http_mirror, cache_dir=tmp_path)
    assert not (tmp_path / "gutenberg" / "pg999999.txt").exists()


def test_book_missing_from_a_mirror_directory_is_named(gutenberg_mirror, tmp_path):
    with pytest.raises(UserError, match="Gutenberg book 999999 is not in the mirror directory"):
        sources.load_gutenberg_book(999999, mirror=str(gutenberg_mirror), cache_dir=tmp_path)


def test_text_files_are_found_in_a_fixed_order(tmp_path):
    for name in ["b.txt", "a.txt", "notes.md"]:
        (tmp_path / name).write_text(name)
    found = sources.find_text_files(f"{tmp_path}/*.txt, {tmp_path}/*.md")
    assert [p.name for p in found] == ["a.txt", "b.txt", "notes.md"]


def test_pattern_matching_nothing_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no files match --files pattern"):
        sources.find_text_files(f"{tmp_path}/*.txt")


def test_atomic_write_replaces_whole_files_only(tmp_path):
    target = tmp_path / "deep" / "file.txt"
    sources.write_file_atomically(target, b"first")
    sources.write_file_atomically(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]
