import dataclasses
import errno
import json
import os
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

import export
import workdirs
from conftest import PROJECT_ROOT
from config import Config
from errors import UserError
from models.char_lstm import build_model
from pipeline.vocab import build_vocabulary

CONFIG = Config(embedding_dim=4, rnn_units=8, seq_len=20, books=(84, 11))
VOCABULARY = build_vocabulary(["the quick brown fox\n"])


def write(directory, *, steps=7, config=CONFIG):
    model = build_model(config.model, VOCABULARY.size)
    export.write_export(directory, model=model, config=config, vocabulary=VOCABULARY, steps_completed=steps)
    return model


def test_export_holds_everything_generation_needs(tmp_path):
    model = write(tmp_path / "export")

    loaded = export.load_export(tmp_path / "export")
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == [
        "charbook.json",
        "config.json",
        "model.weights.h5",
        "saved_model",
        "vocab.json",
    ]
    assert loaded.config == CONFIG
    assert loaded.steps_completed == 7
    assert loaded.vocabulary.chars == VOCABULARY.chars
    stateful = export.load_model(loaded, batch_size=1, stateful=True)
    for saved, restored in zip(model.get_weights(), stateful.get_weights()):
        np.testing.assert_array_equal(saved, restored)


def test_config_json_is_readable_and_complete(tmp_path):
    write(tmp_path / "export")
    manifest = json.loads((tmp_path / "export" / "config.json").read_text())
    assert manifest["steps_completed"] == 7
    assert manifest["vocab_size"] == VOCABULARY.size
    assert manifest["config"]["rnn_units"] == 8 and manifest["config"]["books"] == [84, 11]
    assert set(manifest["config"]) == {f.name for f in dataclasses.fields(Config)}


def test_validation_score_is_kept_and_older_exports_read_without_it(tmp_path):
    model = build_model(CONFIG.model, VOCABULARY.size)
    export.write_export(
        tmp_path / "export", model=model, config=CONFIG, vocabulary=VOCABULARY, steps_completed=7, validation_bits_per_char=2.25
    )
    assert export.load_export(tmp_path / "export").validation_bits_per_char == 2.25

    path = tmp_path / "export" / "config.json"
    manifest = json.loads(path.read_text())
    del manifest["validation_bits_per_char"]  # as exports were written before the score was kept
    path.write_text(json.dumps(manifest))
    assert export.load_export(tmp_path / "export").validation_bits_per_char is None


def test_new_export_replaces_the_old_one_whole(tmp_path):
    write(tmp_path / "export", steps=1)
    write(tmp_path / "export", steps=2)
    assert export.load_export(tmp_path / "export").steps_completed == 2
    assert [p.name for p in tmp_path.iterdir()] == ["export"]  # no staging or previous copies left


def test_crash_between_the_swap_renames_keeps_the_previous_export(tmp_path):
    write(tmp_path / "export", steps=1)
    os.rename(tmp_path / "export", tmp_path / ".export.previous")  # what a kill -9 mid-swap leaves
    assert export.load_export(tmp_path / "export").steps_completed == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".export.previous"]  # a reader moves nothing

    write(tmp_path / "export", steps=2)  # the writer mends it
    assert export.load_export(tmp_path / "export").steps_completed == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_missing_export_says_how_to_make_one(tmp_path):
    with pytest.raises(UserError, match="no export at .*train one with train.py"):
        export.load_export(tmp_path / "nothing")


@pytest.mark.parametrize("name", ["config.json", "vocab.json", "model.weights.h5"])
def test_export_missing_a_file_names_it(tmp_path, name):
    write(tmp_path / "export")
    (tmp_path / "export" / name).unlink()
    with pytest.raises(UserError, match=f"incomplete: {name} is missing"):
        export.load_export(tmp_path / "export")


def test_truncated_weights_are_caught(tmp_path):
    write(tmp_path / "export")
    weights = tmp_path / "export" / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(UserError, match="truncated or damaged"):
        export.load_export(tmp_path / "export")


def test_vocabulary_that_does_not_match_the_weights_is_caught(tmp_path):
    write(tmp_path / "export")
    (tmp_path / "export" / "vocab.json").write_text(build_vocabulary(["abc"]).to_json())
    with pytest.raises(UserError, match="does not hang together"):
        export.load_export(tmp_path / "export")


def test_export_from_a_newer_version_asks_for_an_upgrade(tmp_path):
    write(tmp_path / "export")
    path = tmp_path / "export" / "config.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps(manifest | {"format_version": export.FORMAT_VERSION + 1}))
    with pytest.raises(UserError, match="newer than this tool"):
        export.load_export(tmp_path / "export")

    # Even when it holds a setting this version would refuse: the version is the problem, not damage.
    manifest["config"]["dropout"] = 1.5
    path.write_text(json.dumps(manifest | {"format_version": export.FORMAT_VERSION + 1}))
    with pytest.raises(UserError, match="newer than this tool"):
        export.load_export(tmp_path / "export")


def test_a_directory_of_other_files_is_never_replaced_by_an_export(tmp_path, monkeypatch):
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "novel.txt").write_text("my only copy")
    (tmp_path / "notes").write_text("not a directory")
    for directory, message in [
        (tmp_path / "texts", "is not an export of charbook's \\(it holds novel.txt, and no charbook.json\\)"),
        (tmp_path / "notes", "is a file, not an export directory"),
    ]:
        with pytest.raises(UserError, match=message):
            export.check_can_write(directory)
        with pytest.raises(UserError, match=message):
            write(directory)
    monkeypatch.chdir(tmp_path / "texts")
    with pytest.raises(UserError, match=f"--export_dir={tmp_path / 'texts'} is not an export"):
        write(".")
    assert (tmp_path / "texts" / "novel.txt").read_text() == "my only copy"
    assert (tmp_path / "notes").read_text() == "not a directory"

    # An export, or an empty directory, is replaced.
    write(tmp_path / "export")
    export.check_can_write(tmp_path / "export")
    (tmp_path / "empty").mkdir()
    write(tmp_path / "empty", steps=3)
    assert export.load_export(tmp_path / "empty").steps_completed == 3


def test_a_folder_that_only_looks_like_an_export_is_never_replaced(tmp_path):
    folder = tmp_path / "project"
    (folder / "saved_model").mkdir(parents=True)
    for name in ("config.json", "vocab.json", "model.weights.h5", "saved_model/my_model.pb"):
        (folder / name).write_text("the user's own")
    with pytest.raises(UserError, match="is not an export of charbook's .*no charbook.json"):
        write(folder)
    assert sorted(workdirs.tree(folder)) == [
        "config.json", "model.weights.h5", "saved_model", "saved_model/my_model.pb", "vocab.json"
    ]


def test_files_added_to_an_export_are_never_deleted_by_the_next_one(tmp_path):
    write(tmp_path / "export")
    (tmp_path / "export" / "notes.txt").write_text("how I trained it")
    with pytest.raises(UserError, match="holds files that are not part of the export \\(notes.txt\\).*move them out"):
        write(tmp_path / "export")
    assert (tmp_path / "export" / "notes.txt").read_text() == "how I trained it"


def test_an_export_from_before_the_marker_is_read_and_replaced(tmp_path):
    write(tmp_path / "export", steps=1)
    (tmp_path / "export" / "charbook.json").unlink()  # as exports were written until the marker came
    assert export.load_export(tmp_path / "export").steps_completed == 1
    write(tmp_path / "export", steps=2)
    assert export.load_export(tmp_path / "export").steps_completed == 2

    # ... but not when anything in it is not what such an export held.
    (tmp_path / "export" / "charbook.json").unlink()
    (tmp_path / "export" / "saved_model" / "mine.txt").write_text("keep me")
    with pytest.raises(UserError, match="holds files that are not part of the export \\(saved_model/mine.txt\\)"):
        write(tmp_path / "export", steps=3)
    assert (tmp_path / "export" / "saved_model" / "mine.txt").read_text() == "keep me"


def test_a_checkpoint_directory_is_neither_read_nor_replaced_as_an_export(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "charbook.json").write_text(workdirs.marker_json(workdirs.CHECKPOINTS, format_version=1))
    with pytest.raises(UserError, match="holds charbook's checkpoints, not an export"):
        export.load_export(tmp_path / "ckpt")
    with pytest.raises(UserError, match="holds charbook's checkpoints, not an export"):
        write(tmp_path / "ckpt")


def test_a_folder_without_an_export_is_not_called_incomplete(tmp_path):
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "book.txt").write_text("a book")
    with pytest.raises(UserError, match="no export in .*texts: it holds no config.json, vocab.json or model.weights.h5; give"):
        export.load_export(tmp_path / "texts")


def test_a_file_given_as_the_export_is_named_as_such(tmp_path):
    (tmp_path / "model.txt").write_text("not an export")
    with pytest.raises(UserError, match="is a file, not an export; give the directory train.py exported to") as raised:
        export.load_export(tmp_path / "model.txt")
    assert "train.py --export_dir" not in str(raised.value)


@pytest.mark.parametrize("umask, directory_mode, file_mode", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_an_export_follows_the_umask(tmp_path, umask, directory_mode, file_mode):
    old = os.umask(umask)
    try:
        write(tmp_path / "export")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "export").stat().st_mode) == directory_mode
    for name in ("config.json", "vocab.json", "model.weights.h5", "charbook.json"):
        assert stat.S_IMODE((tmp_path / "export" / name).stat().st_mode) == file_mode


def test_a_previous_copy_that_cannot_be_deleted_is_named(tmp_path, monkeypatch, capsys):
    write(tmp_path / "export", steps=1)
    monkeypatch.setattr(export.shutil, "rmtree", lambda path, ignore_errors=False: None)  # as on a read-only file
    write(tmp_path / "export", steps=2)
    assert f"could not be deleted: delete {tmp_path / '.export.previous'} yourself" in capsys.readouterr().err
    assert export.load_export(tmp_path / "export").steps_completed == 2


def test_a_swap_that_fails_halfway_puts_the_previous_export_back(tmp_path, monkeypatch):
    write(tmp_path / "export", steps=1)
    rename = os.rename

    def fail_to_rename_the_new_export(source, target):
        if ".partial-" in str(source):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        rename(source, target)

    monkeypatch.setattr(export.os, "rename", fail_to_rename_the_new_export)
    with pytest.raises(UserError, match="cannot replace the export at .*Input/output error; the previous export there is unchanged"):
        write(tmp_path / "export", steps=2)
    assert export.load_export(tmp_path / "export").steps_completed == 1
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


def test_unwritable_export_directory_is_caught_before_training(tmp_path):
    export.check_can_write(tmp_path / "new" / "export")  # parents are created
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(UserError, match="cannot write the export to .*choose another --export_dir"):
        export.check_can_write(tmp_path / "file" / "export")


# Writes exports of a mid-size model over and over, with steps_completed 1, 2, 3, ... until killed.
EXPORT_FOREVER = """
import sys
import cli
cli.import_tensorflow_quietly()
import export
from config import Config
from models.char_lstm import build_model
from pipeline.vocab import build_vocabulary
config = Config(embedding_dim=64, rnn_units=256)
vocabulary = build_vocabulary(["the quick brown fox\\n"])
model = build_model(config.model, vocabulary.size)
for steps in range(1, 10_000):
    export.write_export(sys.argv[1], model=model, config=config, vocabulary=vocabulary, steps_completed=steps)
    print(steps, flush=True)
"""


def test_kill_9_while_exporting_leaves_a_whole_export(tmp_path):
    directory = tmp_path / "export"
    for delay in (0.05, 0.2, 0.35, 0.5, 0.8):
        process = subprocess.Popen(
            [sys.executable, "-c", EXPORT_FOREVER, str(directory)], stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT
        )
        assert process.stdout.readline().strip() == "1"  # one export on disk; now kill it at some moment of a later one
        time.sleep(delay)
        process.kill()
        process.wait()
        exported = export.load_export(directory)  # reads and checks config, vocabulary and weights checksum
        export.load_model(exported)
        assert exported.steps_completed >= 1
    # The next write clears what the killed ones left behind.
    write(directory, steps=99)
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


# Exports over and over until killed: export n has seed n, a vocabulary of 8 + n % 5 characters and
# rnn_units 8 + n % 3, so a load that mixed two exports' files could not hang together.
EXPORT_DIFFERENT_MODELS = """
import sys
import cli
cli.import_tensorflow_quietly()
import export
from config import Config
from models.char_lstm import build_model
from pipeline.vocab import Vocabulary
for steps in range(1, 10_000):
    config = Config(embedding_dim=4, rnn_units=8 + steps % 3, seed=steps)
    vocabulary = Vocabulary("abcdefghijklm"[: 8 + steps % 5])
    model = build_model(config.model, vocabulary.size)
    export.write_export(sys.argv[1], model=model, config=config, vocabulary=vocabulary, steps_completed=steps)
    print(steps, flush=True)
"""


def test_readers_see_one_whole_export_while_exports_replace_it(tmp_path, monkeypatch):
    directory = tmp_path / "export"
    read_file = export._read_or_none

    def read_file_slowly(*args):  # as from a slow disk: most swaps then come in the middle of a load
        time.sleep(0.003)
        return read_file(*args)

    monkeypatch.setattr(export, "_read_or_none", read_file_slowly)
    writer = subprocess.Popen(
        [sys.executable, "-c", EXPORT_DIFFERENT_MODELS, str(directory)], stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT
    )
    try:
        assert writer.stdout.readline().strip() == "1"
        loads, seen, errors = 0, set(), []
        deadline = time.monotonic() + 300
        while (loads < 1000 or len(seen) < 5) and time.monotonic() < deadline:
            try:
                exported = export.load_export(directory)
                assert exported.config.seed == exported.steps_completed
                assert exported.vocabulary.size == 8 + exported.steps_completed % 5 + 1  # + 1: the unknown-character id
                if loads % 200 == 0:  # the weights fit the config read with them
                    export.load_model(exported)
                seen.add(exported.steps_completed)
            except (UserError, AssertionError) as error:
                errors.append(repr(error))
            loads += 1
            assert writer.poll() is None, "the writer stopped"
    finally:
        writer.kill()
        writer.wait()
    assert errors[:3] == []
    assert loads >= 1000 and len(seen) >= 5  # the loads spanned several exports


# Writes an export, then tries again with the process' file-size limit too small for the weights: a real
# write failure, as on a full disk.
EXPORT_INTO_A_FULL_DISK = """
import resource, signal, sys
import cli
cli.import_tensorflow_quietly()
import export
from config import Config
from errors import UserError
from models.char_lstm import build_model
from pipeline.vocab import build_vocabulary
config = Config(embedding_dim=64, rnn_units=256)
vocabulary = build_vocabulary(["the quick brown fox\\n"])
export.write_export(sys.argv[1], model=build_model(config.model, vocabulary.size), config=config, vocabulary=vocabulary, steps_completed=1)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so that a write past the limit fails instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
try:
    export.write_export(sys.argv[1], model=build_model(config.model, vocabulary.size), config=config, vocabulary=vocabulary, steps_completed=2)
except UserError as error:
    print(error)
"""


def test_a_failed_write_keeps_the_previous_export_and_says_so(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", EXPORT_INTO_A_FULL_DISK, str(tmp_path / "export")],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"cannot write the export to {tmp_path / 'export'}: File too large" in result.stdout
    assert "the previous export there is unchanged" in result.stdout
    assert export.load_export(tmp_path / "export").steps_completed == 1
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


def test_a_full_disk_is_named(tmp_path, monkeypatch):
    model = build_model(CONFIG.model, VOCABULARY.size)

    def save_weights_on_a_full_disk(path):
        open(path, "wb").write(b"half a file")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(model, "save_weights", save_weights_on_a_full_disk)
    with pytest.raises(UserError, match="No space left on device; nothing was written there. Free some disk space"):
        export.write_export(tmp_path / "export", model=model, config=CONFIG, vocabulary=VOCABULARY, steps_completed=1)
    assert list(tmp_path.iterdir()) == []
