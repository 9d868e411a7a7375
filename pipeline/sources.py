"""Where raw book bytes come from: a Project Gutenberg mirror (with a verified on-disk cache) or the user's files.

Books are fetched in parallel by `fetch_gutenberg_books`; every download is retried with exponential
backoff, checked against its Content-Length, and cached atomically beside a SHA-256 checksum file
(`pg84.txt.sha256`, in `sha256sum` format) that is checked each time the cached copy is used.
"""

import functools
import glob
import hashlib
import http.client
import os
import pathlib
import queue
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable

from errors import UserError
from files import write_file_atomically

DOWNLOAD_TIMEOUT_SECONDS = 60.0
DOWNLOAD_ATTEMPTS = 3
BACKOFF_SECONDS = 1.0  # the wait before the second attempt; it doubles before each further one
PROGRESS_INTERVAL_SECONDS = 10.0  # between progress lines when stderr is not a terminal
SHOWN_FAILURES = 10  # books whose failure is spelled out; the rest are counted
USER_AGENT = "charbook (character-level text generator; downloads each book once and caches it)"


# --- Gutenberg: mirror, download, cache ---


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


class BookUnavailable(UserError):
    """One ebook could not be had from the mirror; the message names it and why."""

    def __init__(self, book_id: int, message: str):
        super().__init__(message)
        self.book_id = book_id


def fetch_gutenberg_books(
    book_ids: Iterable[int], *, skip_missing: bool = False, progress_stream=None, **options
) -> list[tuple[int, pathlib.Path]]:
    """(id, cached path) of every ebook, in the order given, fetching those not cached (see fetch_available_books,
    whose `options` these are: mirror, cache_dir, workers, timeout, attempts, backoff).

    Every book is tried. Books that cannot be had end the call with one UserError that counts them
    and gives the first SHOWN_FAILURES ids and why, unless `skip_missing`: then the same list is one
    warning on `progress_stream` (default stderr) and the rest are returned, as long as one is left.
    """
    book_ids = list(dict.fromkeys(book_ids))
    stream = progress_stream or sys.stderr
    fetched, failures = fetch_available_books(book_ids, progress_stream=stream, **options)
    paths = dict(fetched)
    could_not = f"{len(failures):,} of {len(book_ids):,} Gutenberg books could not be fetched"
    if failures and not skip_missing:
        raise UserError(
            f"{could_not}:\n{list_failures(failures)}\n"
            "Fix or drop those ids, or pass --skip_missing_books to go on without them"
        )
    if not paths:
        raise UserError(
            f"none of the {len(book_ids):,} Gutenberg books could be fetched, so there is no text to use:\n"
            f"{list_failures(failures)}"
        )
    if failures:
        print(f"warning: {could_not}; going on without them (--skip_missing_books):\n{list_failures(failures)}", file=stream)
    return fetched


def fetch_available_books(
    book_ids: list[int],
    *,
    mirror: str,
    cache_dir: pathlib.Path,
    workers: int = 8,
    timeout: float = DOWNLOAD_TIMEOUT_SECONDS,
    attempts: int = DOWNLOAD_ATTEMPTS,
    backoff: float = BACKOFF_SECONDS,
    progress_stream=None,
) -> tuple[list[tuple[int, pathlib.Path]], list[BookUnavailable]]:
    """(id, cached path) of the books that could be had, and why each other one could not, both in the order given.

    Books not cached yet are fetched on `workers` threads. A failure that is not the book's (a full disk) raises at once.
    """
    progress = _Progress(len(book_ids), progress_stream or sys.stderr)
    stop = threading.Event()  # set when this call ends early (Ctrl-C, a full disk): workers stop taking books
    options = dict(timeout=timeout, attempts=attempts, backoff=backoff, notify=progress.note, stop=stop)
    fetch = functools.partial(_fetch_gutenberg_book, mirror=mirror, cache_dir=cache_dir, **options)
    paths, failures = {}, []
    try:
        for book_id, fetched, error in _in_threads(fetch, book_ids, workers=workers, stop=stop):
            if isinstance(error, BookUnavailable):
                failures.append(error)
                progress.book_failed()
            elif error is not None:  # not the book's fault (a full disk, an unwritable cache): stop everything
                raise error
            else:
                paths[book_id], downloaded_bytes = fetched
                progress.book_done(downloaded_bytes)
    finally:
        stop.set()
        progress.finish()
    position = {book_id: i for i, book_id in enumerate(book_ids)}
    failures.sort(key=lambda error: position[error.book_id])
    return [(book_id, paths[book_id]) for book_id in book_ids if book_id in paths], failures


def list_failures(failures: list[BookUnavailable]) -> str:
    """Indented lines: the first SHOWN_FAILURES failures with their reasons, then how many more (--books=1-5000)."""
    lines = [f"  {error}" for error in failures[:SHOWN_FAILURES]]
    if len(failures) > SHOWN_FAILURES:
        lines.append(f"  ... and {len(failures) - SHOWN_FAILURES:,} more")
    return "\n".join(lines)


def _in_threads(function, items: list, *, workers: int, stop: threading.Event):
    """Yields (item, function(item), None) or (item, None, the exception it raised) as each call ends.

    Runs on daemon threads: unlike a ThreadPoolExecutor's, they do not hold up Ctrl-C until their
    downloads time out (a download cut off that way leaves nothing, as the cache is written atomically).
    Threads take no new item once `stop` is set.
    """
    waiting, finished = queue.SimpleQueue(), queue.SimpleQueue()
    for item in items:
        waiting.put(item)

    def work():
        while not stop.is_set():
            try:
                item = waiting.get_nowait()
            except queue.Empty:
                return
            try:
                finished.put((item, function(item), None))
            except BaseException as error:
                finished.put((item, None, error))

    for _ in range(min(max(1, workers), len(items))):
        threading.Thread(target=work, name="download", daemon=True).start()
    for _ in items:
        yield finished.get()


def fetch_gutenberg_book(book_id: int, *, mirror: str, cache_dir: pathlib.Path, **options) -> pathlib.Path:
    """Path of the verified cached copy of ebook `book_id`, downloading it first if needed."""
    path, _ = _fetch_gutenberg_book(book_id, mirror=mirror, cache_dir=cache_dir, **options)
    return path


def load_gutenberg_book(book_id: int, *, mirror: str, cache_dir: pathlib.Path, **options) -> bytes:
    """Raw bytes of ebook `book_id`, from the cache or the mirror."""
    return fetch_gutenberg_book(book_id, mirror=mirror, cache_dir=cache_dir, **options).read_bytes()


def _fetch_gutenberg_book(
    book_id: int,
    *,
    mirror: str,
    cache_dir: pathlib.Path,
    timeout: float = DOWNLOAD_TIMEOUT_SECONDS,
    attempts: int = DOWNLOAD_ATTEMPTS,
    backoff: float = BACKOFF_SECONDS,
    notify: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
    stop: threading.Event | None = None,
) -> tuple[pathlib.Path, int]:
    """(cached path, bytes downloaded: 0 when the cache already held a good copy)."""
    cached = cached_book_path(book_id, cache_dir=cache_dir)
    problem = cache_entry_problem(cached)
    if problem is None:
        return cached, 0
    if cached.exists():
        notify(f"note: the cached copy of Gutenberg book {book_id} ({cached}) {problem}; fetching it again")
    url = gutenberg_book_url(book_id, mirror=mirror)
    data = _download_book(book_id, url, timeout=timeout, attempts=attempts, backoff=backoff, stop=stop or threading.Event())
    write_cache_entry(cached, data)
    return cached, len(data)


def cached_book_path(book_id: int, *, cache_dir: pathlib.Path) -> pathlib.Path:
    """Where ebook `book_id` is kept once fetched (beside its checksum file, pg<id>.txt.sha256)."""
    return pathlib.Path(cache_dir) / "gutenberg" / f"pg{book_id}.txt"


def write_cache_entry(path: pathlib.Path, data: bytes) -> None:
    """Writes `data`, then its checksum file, each atomically; a crash between the two leaves an entry that fails verification."""
    write_file_atomically(path, data)
    write_file_atomically(_checksum_path(path), f"{hashlib.sha256(data).hexdigest()}  {path.name}\n".encode())


def cache_entry_problem(path: pathlib.Path) -> str | None:
    """What is wrong with the cached file at `path` ('is not cached', a damaged copy), or None if it matches its checksum."""
    if not path.is_file():
        return "is not cached"
    try:
        recorded = _checksum_path(path).read_text(encoding="ascii").split()[0]
    except FileNotFoundError:
        return "has no checksum file (an interrupted download?)"
    except (OSError, UnicodeDecodeError, IndexError):
        return "has a damaged checksum file"
    if hashlib.sha256(path.read_bytes()).hexdigest() != recorded.lower():
        return "does not match its SHA-256 checksum (damaged or cut short)"
    return None


def _checksum_path(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(path.name + ".sha256")


def _download_book(book_id: int, url: str, *, timeout: float, attempts: int, backoff: float, stop: threading.Event) -> bytes:
    """The book's whole body at `url`, retrying transient failures with exponential backoff."""
    try:
        return download(url, what=f"Gutenberg book {book_id}", timeout=timeout, attempts=attempts, backoff=backoff, stop=stop)
    except DownloadFailed as error:
        raise BookUnavailable(book_id, str(error)) from None


class DownloadFailed(UserError):
    """A file could not be had from the mirror; the message names it, why, and what to do."""


def download(
    url: str,
    *,
    what: str,
    read: Callable | None = None,
    timeout: float = DOWNLOAD_TIMEOUT_SECONDS,
    attempts: int = DOWNLOAD_ATTEMPTS,
    backoff: float = BACKOFF_SECONDS,
    stop: threading.Event | None = None,
    expected: str = "the book's plain text",
    if_missing: str = "check the id",
    if_missing_locally: str = "check the id or --gutenberg_mirror",
):
    """`read(response)` of the file at `url` (default: its whole body), retrying transient failures with exponential backoff.

    `what` names the file in messages ("Gutenberg book 84") and `expected` its content; `if_missing` and
    `if_missing_locally` say what to do when a web mirror or a mirror directory lacks it.
    `read` may stream the body (the catalog's RDF archive is over 100 MB); a body cut short raises in it, and is retried.
    """
    stop = stop or threading.Event()
    failed = f"{what} could not be downloaded from {url}"
    timed_out = f"no answer within --download_timeout={timeout:g} seconds"
    for attempt in range(1, attempts + 1):
        try:
            return _download_once(url, timeout=timeout, read=read or _read_body)
        except urllib.error.HTTPError as error:
            answered = f"answered {error.code} {error.reason}"
            if error.code in (404, 410):
                raise DownloadFailed(f"{what} is not on the mirror ({url} {answered}); {if_missing}") from None
            reason = f"the server {answered}"
            if error.code < 500 and error.code != 429:  # only server trouble and rate limits pass with time
                raise DownloadFailed(f"{failed}: {reason}; try another --gutenberg_mirror") from None
        except urllib.error.URLError as error:
            if url.startswith("file:"):
                raise DownloadFailed(_local_mirror_problem(what, url, error.reason, if_missing_locally)) from None
            reason = timed_out if _is_timeout(error.reason) else f"cannot reach the server ({error.reason})"
        except TimeoutError:
            reason = timed_out
        except http.client.IncompleteRead as error:
            got, expected = len(error.partial), len(error.partial) + (error.expected or 0)
            reason = f"the download was cut short ({got:,} of {expected:,} bytes)"
        except (http.client.HTTPException, OSError) as error:  # a dropped connection, a garbled answer
            reason = f"the connection failed ({error.__class__.__name__}: {error})"
        except _NotABook as error:
            raise DownloadFailed(f"{failed}: the mirror sent a web page, not {expected}; try another --gutenberg_mirror") from None
        if attempt < attempts and stop.wait(backoff * 2 ** (attempt - 1)):
            break
    times = f", {attempt} times" if attempt > 1 else ""
    raise DownloadFailed(f"{failed}: {reason}{times}; try again later or use another --gutenberg_mirror")


class _NotABook(Exception):
    """The mirror answered with a web page."""


def _read_body(response) -> bytes:
    body = response.read()
    # Some servers (and captive portals) answer a request for a missing or blocked file with a web page.
    if body[:100].lstrip().lower().startswith((b"<!doctype html", b"<html")):
        raise _NotABook()
    return body


def _download_once(url: str, *, timeout: float, read: Callable):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if "html" in response.headers.get("Content-Type", ""):
            raise _NotABook()
        return read(response)


def _is_timeout(reason) -> bool:
    return isinstance(reason, TimeoutError) or "timed out" in str(reason)


def _local_mirror_problem(what: str, url: str, reason, if_missing: str) -> str:
    path = pathlib.Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    mirror = path.parents[3]  # <mirror>/cache/epub/<id>/pg<id>.txt, <mirror>/cache/epub/feeds/<feed>
    if not mirror.is_dir():
        return (
            f"{what}: the --gutenberg_mirror directory {mirror} does not exist; "
            "check --gutenberg_mirror (a web mirror starts with https://)"
        )
    if isinstance(reason, (FileNotFoundError, NotADirectoryError)):
        return f"{what} is not in the mirror directory: {path} does not exist; {if_missing}"
    return f"{what} cannot be read from the mirror directory: {path}: {getattr(reason, 'strerror', None) or reason}"


class _Progress:
    """'books 37/100: 30 downloaded (12.3 MB), 5 from the cache, 2 failed' on `stream`: on a terminal one
    line rewritten in place, otherwise a line every PROGRESS_INTERVAL_SECONDS and one at the end.
    Silent while every book comes from the cache."""

    def __init__(self, total: int, stream):
        self.total, self.stream = total, stream
        self.done = self.failed = self.downloaded = self.bytes = 0
        self.on_terminal = hasattr(stream, "isatty") and stream.isatty()
        self.last_line, self.last_line_at = "", time.monotonic()
        self.line_open = False  # a terminal line is waiting for its newline
        self.lock = threading.Lock()

    def book_done(self, downloaded_bytes: int) -> None:
        with self.lock:
            self.done += 1
            if downloaded_bytes:
                self.downloaded += 1
                self.bytes += downloaded_bytes
            self._show()

    def book_failed(self) -> None:
        with self.lock:
            self.done += 1
            self.failed += 1
            self._show()

    def note(self, message: str) -> None:
        with self.lock:
            if self.line_open:  # the message takes the progress line's place; the line comes back below it
                self.stream.write("\r\x1b[K")
                self.line_open, self.last_line = False, ""
            self.stream.write(message + "\n")
            self.stream.flush()

    def finish(self) -> None:
        with self.lock:
            self._show(final=True)
            if self.line_open:
                self.stream.write("\n")
                self.line_open = False
            self.stream.flush()

    def _show(self, final: bool = False) -> None:
        if not (self.downloaded or self.failed):
            return
        line = (
            f"books {self.done}/{self.total}: {self.downloaded} downloaded ({self.bytes / 1e6:.1f} MB), "
            f"{self.done - self.downloaded - self.failed} from the cache, {self.failed} failed"
        )
        due = self.on_terminal or final or time.monotonic() - self.last_line_at >= PROGRESS_INTERVAL_SECONDS
        if not due or line == self.last_line:
            return
        self.last_line, self.last_line_at = line, time.monotonic()
        if self.on_terminal:
            self.stream.write("\r\x1b[K" + line)
            self.line_open = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


# --- the user's own files ---


def find_text_files(patterns: str) -> list[pathlib.Path]:
    """Files matching comma-separated glob `patterns`, sorted so the corpus order never depends on the disk."""
    paths = []
    for pattern in (p.strip() for p in patterns.split(",") if p.strip()):
        matches = sorted(pathlib.Path(p) for p in glob.glob(os.path.expanduser(pattern), recursive=True))
        matches = [p for p in matches if p.is_file()]
        if not matches and os.path.isdir(os.path.expanduser(pattern)):
            example = os.path.join(pattern, "**", "*.txt")
            raise UserError(f"--files pattern {pattern!r} is a directory; give a pattern of files in it, e.g. {example!r}")
        if not matches:
            raise UserError(f"no files match --files pattern {pattern!r}; check the path (quote it so the shell leaves the * alone)")
        paths.extend(matches)
    return sorted(set(paths))


def load_text_file(path: pathlib.Path) -> bytes:
    try:
        return pathlib.Path(path).read_bytes()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
