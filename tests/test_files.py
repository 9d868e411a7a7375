import os
import stat

import pytest

from files import write_file_atomically


def test_writes_a_new_file_and_replaces_an_old_one(tmp_path):
    path = tmp_path / "deep" / "run.json"
    write_file_atomically(path, b"first")
    write_file_atomically(path, b"second")
    assert path.read_bytes() == b"second"
    assert os.listdir(path.parent) == ["run.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    write_file_atomically(path, b"good")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_file_atomically(path, b"half-written")
    assert path.read_bytes() == b"good"
    assert os.listdir(tmp_path) == ["run.json"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_the_file_follows_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_file_atomically(tmp_path / "pg84.txt", b"a book")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "pg84.txt").stat().st_mode) == mode
