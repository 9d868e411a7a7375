"""Where raw book bytes come from: a Project Gutenberg mirror (with an on-disk cache) or the user's files."""

import glob
import os
import pathlib
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from errors import UserError

DOWNLOAD_TIMEOUT_SECONDS = 60
DOWNLOAD_ATTEMPTS = 3


def default_cache_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "charbook"


def gutenberg_book_url(book_id: int, *, mirror: str) -> str:
    """The address of a plain-text ebook on a mirror laid out like gutenberg.org.

    (84, mirror='https://www.gutenberg.org') -> 'https://www.gutenberg.org/cache/epub/84/pg84.txt'
    A local directory becomes a file:// URL, so one code path serves both.
    """
    if "://" not in mirror:
        mirror = pathlib.Path(mirror).expanduser().resolve().as_uri()
    return f"{mirror.rstrip('/')}/cache/epub/{book_id}/pg{book_id}.txt"


def fetch_gutenberg_book(book_id: int, *, mirror: str, cache_dir: pathlib.Path) -> pathlib.Path:
    """Path of the cached copy of ebook `book_id`, downloading it first if it is not cached yet."""
    cached = pathlib.Path(cache_dir) / "gutenberg" / f"pg{book_id}.txt"
    if cached.is_file():
        return cached
    url = gutenberg_book_url(book_id, mirror=mirror)
    write_file_atomically(cached, _download(url, what=f"Gutenberg book {book_id}"))
    return cached


def load_gutenberg_book(book_id: int, *, mirror: str, cache_dir: pathlib.Path) -> bytes:
    """Raw bytes of ebook `book_id`, from the cache or the mirror."""
    return fetch_gutenberg_book(book_id, mirror=mirror, cache_dir=cache_dir).read_bytes()


def find_text_files(patterns: str) -> list[pathlib.Path]:
    """Files matching comma-separated glob `patterns`, sorted so the corpus order never depends on the disk."""
    paths = []
    for pattern in (p.strip() for p in patterns.split(",") if p.strip()):
        matches = sorted(pathlib.Path(p) for p in glob.glob(os.path.expanduser(pattern), recursive=True))
        matches = [p for p in matches if p.is_file()]
        if not matches:
            raise UserError(f"no files match --files pattern {pattern!r}; check the path (quote it so the shell leaves the * alone)")
        paths.extend(matches)
    return sorted(set(paths))


def load_text_file(path: pathlib.Path) -> bytes:
    try:
        return pathlib.Path(path).read_bytes()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None


def write_file_atomically(path: pathlib.Path, data: bytes) -> None:
    """Writes `data` to a temporary file beside `path`, then renames it: readers see the old file or the new, whole."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise


def _download(url: str, *, what: str) -> bytes:
    """The whole body at `url`, retrying transient failures; a UserError names `what` and the reason."""
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            return _download_once(url)
        except urllib.error.HTTPError as error:
            reason = f"the server answered {error.code} {error.reason}"
            if error.code == 404:
                raise UserError(f"{what} is not on the mirror ({url}: 404 Not Found); check the id") from None
            if error.code < 500:
                break
        except urllib.error.URLError as error:
            if isinstance(error.reason, (FileNotFoundError, NotADirectoryError)):
                raise UserError(f"{what} is not in the mirror directory: {urllib.parse.unquote(urllib.parse.urlsplit(url).path)} does not exist") from None
            reason = f"cannot reach {url}: {error.reason}"
        except (TimeoutError, OSError, _TruncatedDownload) as error:
            reason = f"download from {url} failed: {error}"
        if attempt < DOWNLOAD_ATTEMPTS:
            time.sleep(2 ** attempt)
    raise UserError(f"{what} could not be downloaded: {reason}. Check the network or --gutenberg_mirror and run again")


class _TruncatedDownload(Exception):
    pass


def _download_once(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
        body = response.read()
        expected = response.headers.get("Content-Length") if hasattr(response, "headers") else None
    if expected is not None and expected.isdigit() and int(expected) != len(body):
        raise _TruncatedDownload(f"got {len(body):,} of {int(expected):,} bytes")
    return body
