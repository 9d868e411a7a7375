"""Shared fixtures: the real corpora beside the project, a shrunken Config for tiny, fast runs, and a scripted
Gutenberg mirror on 127.0.0.1 for every way a download can fail."""

import collections
import functools
import http.server
import os
import pathlib
import signal
import threading

import pytest

import cli

cli.import_tensorflow_quietly()  # before the imports below start TensorFlow, with its C++ chatter

from config import Config  # noqa: E402

# A test run started in the background by a non-interactive shell (`bash .ci/run &`) inherits SIGINT ignored,
# and so would every train.py it starts, which then shrugs off the Ctrl-C tests' SIGINT. Catching it here
# hands each child the default again (exec resets a caught signal), as a terminal's Ctrl-C finds it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPORA_DIR = pathlib.Path(os.environ.get("CHARBOOK_CORPORA", PROJECT_ROOT.parent / "shared" / "corpora"))


@pytest.fixture(scope="session")
def corpora_dir() -> pathlib.Path:
    if not (CORPORA_DIR / "gutenberg" / "cache" / "epub").is_dir():
        pytest.fail(f"the test corpora are not at {CORPORA_DIR}; set CHARBOOK_CORPORA to the shared/corpora directory")
    return CORPORA_DIR


@pytest.fixture(scope="session")
def gutenberg_mirror(corpora_dir) -> pathlib.Path:
    """A local directory laid out like gutenberg.org: cache/epub/<id>/pg<id>.txt."""
    return corpora_dir / "gutenberg"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_mirror(gutenberg_mirror):
    """The local mirror served over HTTP on 127.0.0.1, as gutenberg.org would serve it."""
    handler = functools.partial(QuietHandler, directory=str(gutenberg_mirror))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def tiny_config(gutenberg_mirror, tmp_path) -> Config:
    """The real Config shrunk to a model and batches that train in seconds on one book (Alice)."""
    return Config(
        books=(11,),
        gutenberg_mirror=str(gutenberg_mirror),
        cache_dir=str(tmp_path / "cache"),
        seq_len=32,
        batch_size=16,
        shuffle_buffer=256,
        embedding_dim=8,
        rnn_units=16,
        export_dir=str(tmp_path / "export"),
    )


def gutenberg_file(title: str, body: str) -> str:
    """A book as gutenberg.org serves it today: header, START line, the book, END line, licence (about 450 characters)."""
    return (
        f"The Project Gutenberg eBook of {title}\n\nTitle: {title}\nLanguage: English\n\n"
        f"*** START OF THE PROJECT GUTENBERG EBOOK {title.upper()} ***\n\n\n{body}\n\n\n"
        f"*** END OF THE PROJECT GUTENBERG EBOOK {title.upper()} ***\n\n"
        "Updated editions will replace the previous one--the old editions will be renamed.\n"
        "*** START: FULL LICENSE ***\n"
        "Creating the works from print editions not protected by U.S. copyright law means that no one\n"
        "owns a United States copyright in these works, so the Foundation can copy and distribute it.\n"
    )


# --- a scripted mirror: each path answers with the next of its scripted responses (the last one repeats) ---


def ok(body):
    def respond(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return respond


def status(code):
    return lambda handler: handler.send_error(code)


def redirect(code, location):
    def respond(handler):
        handler.send_response(code)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return respond


def cut_short(body, claimed_length):
    def respond(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(claimed_length))
        handler.end_headers()
        handler.wfile.write(body)
        handler.close_connection = True

    return respond


def stall(released, body, *, after_headers):
    """Goes quiet (until the test ends) before answering at all, or after the headers and 20 bytes of `body`."""

    def respond(handler):
        if not after_headers:
            released.wait(5)
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[:20])
        handler.wfile.flush()
        released.wait(5)

    return respond


def html_page(handler):
    ok(b"<!DOCTYPE html><html><body>Please verify you are human</body></html>")(handler)


class ScriptedMirror:
    def __init__(self):
        self.script = {}
        self.requests = collections.Counter()
        self.released = threading.Event()  # set at teardown: slow answers stop waiting
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                responses = mirror.script.get(self.path, [status(404)])
                mirror.requests[self.path] += 1
                responses[min(mirror.requests[self.path], len(responses)) - 1](self)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda *args: None  # clients that gave up leave broken pipes behind
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def book(self, book_id, *responses):
        self.script[f"/cache/epub/{book_id}/pg{book_id}.txt"] = list(responses)

    def requests_for(self, book_id):
        return self.requests[f"/cache/epub/{book_id}/pg{book_id}.txt"]


@pytest.fixture
def scripted_mirror():
    """A Gutenberg mirror on 127.0.0.1 that answers each book's requests as scripted with .book(id, *responses)."""
    mirror = ScriptedMirror()
    threading.Thread(target=mirror.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    yield mirror
    mirror.released.set()
    mirror.server.shutdown()
    mirror.server.server_close()
