import os

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
