"""Directories charbook owns (exports, checkpoints): the marker that says charbook wrote one, and the lock that
lets one run at a time write it.

A directory is only ever replaced or cleaned out when it carries the marker, so a folder of the user's
that happens to hold a file named config.json or checkpoint is never taken for one of ours. The lock is
an OS advisory lock (flock) on a small file beside the directory: the OS drops it when its process ends,
however it ends, so a crashed or killed run never leaves a directory locked.
"""

import contextlib
import datetime
import fcntl
import json
import os
import pathlib
import socket

from errors import UserError, os_error_reason

MARKER_FILE = "charbook.json"
TOOL = "charbook"
EXPORT = "export"
CHECKPOINTS = "checkpoints"
KIND_NAMES = {EXPORT: "an export", CHECKPOINTS: "checkpoints"}

# Lock files this process holds, with how many holders each: flock locks belong to one open file, so a
# second open of the same lock file in this process would refuse its own holder.
_held_locks: dict[pathlib.Path, int] = {}


def marker_json(kind: str, *, format_version: int, **details) -> str:
    """The marker of a directory of `kind` (EXPORT or CHECKPOINTS), as written into it."""
    return json.dumps({"tool": TOOL, "kind": kind, "format_version": format_version, **details}, indent=2)


def read_marker(directory: pathlib.Path) -> dict | None:
    """The marker in `directory` if charbook wrote one there, else None (no marker, or not ours)."""
    try:
        return parse_marker((directory / MARKER_FILE).read_bytes())
    except OSError:
        return None


def parse_marker(data: bytes | None) -> dict | None:
    """A marker file's contents if charbook wrote them, else None."""
    try:
        marker = json.loads(data) if data is not None else None
    except ValueError:
        return None
    return marker if isinstance(marker, dict) and marker.get("tool") == TOOL else None


def check_kind(marker: dict | None, kind: str, *, place: str, advice: str) -> None:
    """Refuses a directory whose marker says charbook wrote something other than `kind` there."""
    if marker is not None and marker.get("kind") != kind:
        raise UserError(f"{place} holds charbook's {marker.get('kind')}, not {KIND_NAMES[kind]}; {advice}")


def tree(directory: pathlib.Path) -> list[str]:
    """Every file and directory under `directory`, as sorted relative paths ('saved_model/variables')."""
    return sorted(path.relative_to(directory).as_posix() for path in directory.rglob("*"))


def describe_paths(paths: list[str], *, shown: int = 3) -> str:
    """'a.txt, b.txt, c.txt and 4 more': the first few of a list of names, and how many were left out."""
    listed = ", ".join(paths[:shown])
    return f"{listed} and {len(paths) - shown:,} more" if len(paths) > shown else listed


def is_inside(path: str | os.PathLike, directory: str | os.PathLike) -> bool:
    """Whether `path` is `directory` or lies somewhere beneath it (symbolic links followed)."""
    path, directory = pathlib.Path(path).resolve(), pathlib.Path(directory).resolve()
    return path == directory or directory in path.parents


@contextlib.contextmanager
def exclusive_use(directory: str | os.PathLike, *, flag: str):
    """Holds `directory`'s lock while the block runs: one writer per directory.

    A second process asking for it is refused at once with a UserError naming the holder (pid, host,
    start time) and `flag`, the setting that named the directory. The lock file, `.<name>.lock` beside
    the directory, is deleted when the block ends; one left by a killed run is simply locked again.
    """
    lock_path = _lock_path(directory)
    if lock_path in _held_locks:  # this process already holds it (train.py, then write_export)
        _held_locks[lock_path] += 1
        try:
            yield
        finally:
            _held_locks[lock_path] -= 1
        return
    fd = _lock(lock_path, directory=directory, flag=flag)
    _held_locks[lock_path] = 1
    try:
        yield
    finally:
        del _held_locks[lock_path]
        lock_path.unlink(missing_ok=True)  # while still locked: a run waiting on this file will see it is gone
        os.close(fd)


def _lock_path(directory: str | os.PathLike) -> pathlib.Path:
    directory = pathlib.Path(os.path.abspath(directory))
    return directory.with_name(f".{directory.name}.lock")


def _lock(lock_path: pathlib.Path, *, directory, flag: str) -> int:
    """Opens and flocks `lock_path`, then writes who holds it; returns the open file."""
    while True:
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise UserError(f"cannot write to {flag}={directory}: {os_error_reason(error)}; choose another {flag}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(fd)
            os.close(fd)
            raise UserError(
                f"{flag}={directory} is in use by another charbook run ({holder}); two runs writing one directory would "
                f"mix their files. Wait for that run to end or stop it, or choose another {flag}"
            ) from None
        # Its last holder may have deleted the file between our open and our lock: then lock the new one.
        try:
            if os.path.samestat(os.fstat(fd), os.stat(lock_path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": datetime.datetime.now().isoformat(" ", "seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)
    return fd


def _describe_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0))
        return f"pid {holder['pid']} on {holder['host']}, started {holder['started']}"
    except (OSError, ValueError, KeyError, TypeError):  # it has not written its name yet
        return "it is just starting"
