"""A folder served on 127.0.0.1 and a headless Chromium to open it in: what the web page's test and benchmark run on.

The browser is Debian's `chromium-headless-shell` (apt; .ci/run installs it), driven by the `playwright` package
through executable_path: playwright's own browser downloads need a network this project does not count on.
"""

import contextlib
import functools
import http.server
import os
import pathlib
import shutil
import threading
from collections.abc import Iterator

# Where Debian's package puts the browser; CHARBOOK_CHROMIUM names another.
CHROMIUM_PATHS = ("/usr/lib/chromium/chromium-headless-shell", "/usr/bin/chromium-headless-shell", "/usr/bin/chromium")
# No sandbox (tests run as root in containers), no GPU, and nothing that reaches out to the network on its own.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
)


def find_chromium() -> tuple[str | None, str]:
    """The path of a headless Chromium, and if there is none, why (for a test's skip message)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None, "the playwright package is not installed: make install (or pip install -c requirements-lock.txt '.[test]')"
    candidates = [os.environ["CHARBOOK_CHROMIUM"]] if os.environ.get("CHARBOOK_CHROMIUM") else list(CHROMIUM_PATHS)
    for candidate in candidates:
        path = shutil.which(candidate)
        if path:
            return path, ""
    return None, (
        f"no headless Chromium at {', '.join(candidates)}: apt-get install chromium-headless-shell "
        "(as .ci/run does), or set CHARBOOK_CHROMIUM to a Chromium binary"
    )


@contextlib.contextmanager
def launch_chromium(executable_path: str):
    """A playwright Browser running the Chromium at `executable_path`, headless; closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable_path, headless=True, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def serve_folder(folder: str | os.PathLike) -> Iterator[str]:
    """Serves `folder` over HTTP on 127.0.0.1 (a free port) in a thread, as a static host would; yields its URL."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(QuietHandler, directory=str(pathlib.Path(folder)))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
