"""Writing a file so that readers, and whatever survives a crash or kill -9, see the old file or the new one, whole;
and discarding what is written to a stdout whose reader has gone."""

import os
import pathlib
import secrets
import sys


def write_file_atomically(path: pathlib.Path, data: bytes) -> None:
    """Writes `data` to a temporary file beside `path`, then renames it: readers see the old file or the new, whole."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # Not tempfile.mkstemp, whose files are 0600 whatever the umask: a cache or checkpoint shared with a group stays readable.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise


def discard_stdout() -> None:
    """Points stdout at /dev/null, as Python's documentation advises once its reader has gone (a | head):
    what is still buffered, and whatever is printed after, can then no longer raise BrokenPipeError."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
