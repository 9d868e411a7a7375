"""Writing a file so that readers, and whatever survives a crash or kill -9, see the old file or the new one, whole."""

import os
import pathlib
import tempfile


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
