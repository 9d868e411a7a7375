"""Directories charbook owns: the marker, and the lock that allows one writer at a time (tested with real processes)."""

import os
import subprocess
import sys

import pytest

import workdirs
from conftest import PROJECT_ROOT
from errors import UserError

# Holds the lock of argv[1] until killed, saying when it has it.
HOLD_THE_LOCK = """
import sys, time
import workdirs
with workdirs.exclusive_use(sys.argv[1], flag="--export_dir"):
    print("locked", flush=True)
    time.sleep(600)
"""


def start_holder(directory):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, str(directory)], stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_writer_is_refused_with_the_first_ones_name(tmp_path):
    holder = start_holder(tmp_path / "export")
    try:
        with pytest.raises(UserError) as refused:
            with workdirs.exclusive_use(tmp_path / "export", flag="--export_dir"):
                pass
        assert f"--export_dir={tmp_path / 'export'} is in use by another charbook run (pid {holder.pid} on " in str(refused.value)
        assert "started 20" in str(refused.value) and "choose another --export_dir" in str(refused.value)
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_writer_leaves_no_lock_behind(tmp_path):
    holder = start_holder(tmp_path / "export")
    holder.kill()  # kill -9: no clean-up runs, the lock file stays
    holder.wait()
    assert (tmp_path / ".export.lock").exists()
    with workdirs.exclusive_use(tmp_path / "export", flag="--export_dir"):
        pass
    assert not (tmp_path / ".export.lock").exists()  # deleted by the run that ended cleanly


def test_one_process_may_take_its_own_lock_again(tmp_path):
    with workdirs.exclusive_use(tmp_path / "export", flag="--export_dir"):
        with workdirs.exclusive_use(tmp_path / "export", flag="--export_dir"):  # train.py, then write_export
            pass
        assert (tmp_path / ".export.lock").exists()  # still held by the outer block
    assert not (tmp_path / ".export.lock").exists()


def test_the_marker_is_recognised_only_when_charbook_wrote_it(tmp_path):
    assert workdirs.read_marker(tmp_path) is None
    (tmp_path / "charbook.json").write_text('{"tool": "something else", "kind": "export"}')
    assert workdirs.read_marker(tmp_path) is None
    (tmp_path / "charbook.json").write_text(workdirs.marker_json(workdirs.EXPORT, format_version=1, files=["a"]))
    assert workdirs.read_marker(tmp_path) == {"tool": "charbook", "kind": "export", "format_version": 1, "files": ["a"]}


def test_paths_inside_a_directory(tmp_path):
    assert workdirs.is_inside(tmp_path / "export", tmp_path / "export")
    assert workdirs.is_inside(tmp_path / "export" / "logs", tmp_path / "export")
    assert not workdirs.is_inside(tmp_path / "export.logs", tmp_path / "export")
    os.symlink(tmp_path / "export", tmp_path / "link")
    assert workdirs.is_inside(tmp_path / "link" / "ckpt", tmp_path / "export")


def test_long_lists_of_names_are_cut_short():
    assert workdirs.describe_paths(["a", "b"]) == "a, b"
    assert workdirs.describe_paths(["a", "b", "c", "d", "e"]) == "a, b, c and 2 more"
