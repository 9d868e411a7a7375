import dataclasses
import errno
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import export
from conftest import PROJECT_ROOT
from config import Config
from errors import UserError
from models.char_lstm import build_model
from pipeline.vocab import build_vocabulary

CONFIG = Config(embedding_dim=4, rnn_units=8, seq_len=20, books=(84, 11))
VOCABULARY = build_vocabulary(["the quick brown fox\n"])


def write(directory, *, steps=7, config=CONFIG):
    model = build_model(config, VOCABULARY.size)
    export.write_export(directory, model=model, config=config, vocabulary=VOCABULARY, steps_completed=steps)
    return model


def test_export_holds_everything_generation_needs(tmp_path):
    model = write(tmp_path / "export")

    loaded = export.load_export(tmp_path / "export")
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == [
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


def test_new_export_replaces_the_old_one_whole(tmp_path):
    write(tmp_path / "export", steps=1)
    write(tmp_path / "export", steps=2)
    assert export.load_export(tmp_path / "export").steps_completed == 2
    assert [p.name for p in tmp_path.iterdir()] == ["export"]  # no staging or previous copies left


def test_crash_between_the_swap_renames_keeps_the_previous_export(tmp_path):
    write(tmp_path / "export", steps=1)
    os.rename(tmp_path / "export", tmp_path / ".export.previous")  # what a kill -9 mid-swap leaves
    assert export.load_export(tmp_path / "export").steps_completed == 1


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
        (tmp_path / "texts", "holds files that are not part of an export \\(novel.txt\\)"),
        (tmp_path / "notes", "is a file, not an export directory"),
    ]:
        with pytest.raises(UserError, match=message):
            export.check_can_write(directory)
        with pytest.raises(UserError, match=message):
            write(directory)
    monkeypatch.chdir(tmp_path / "texts")
    with pytest.raises(UserError, match=f"--export_dir={tmp_path / 'texts'} holds files"):
        write(".")
    assert (tmp_path / "texts" / "novel.txt").read_text() == "my only copy"
    assert (tmp_path / "notes").read_text() == "not a directory"

    # An export, or an empty directory, is replaced.
    write(tmp_path / "export")
    export.check_can_write(tmp_path / "export")
    (tmp_path / "empty").mkdir()
    write(tmp_path / "empty", steps=3)
    assert export.load_export(tmp_path / "empty").steps_completed == 3


def test_unwritable_export_directory_is_caught_before_training(tmp_path):
    export.check_can_write(tmp_path / "new" / "export")  # parents are created
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(UserError, match="cannot write the export to .*choose another --export_dir"):
        export.check_can_write(tmp_path / "file" / "export")


# Writes exports of a mid-size model over and over, with steps_completed 1, 2, 3, ... until killed.
EXPORT_FOREVER = """
import sys
import cli, export
from config import Config
from models.char_lstm import build_model
from pipeline.vocab import build_vocabulary
config = Config(embedding_dim=64, rnn_units=256)
vocabulary = build_vocabulary(["the quick brown fox\\n"])
model = build_model(config, vocabulary.size)
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


# Writes an export, then tries again with the process' file-size limit too small for the weights: a real
# write failure, as on a full disk.
EXPORT_INTO_A_FULL_DISK = """
import resource, signal, sys
import cli, export
from config import Config
from errors import UserError
from models.char_lstm import build_model
from pipeline.vocab import build_vocabulary
config = Config(embedding_dim=64, rnn_units=256)
vocabulary = build_vocabulary(["the quick brown fox\\n"])
export.write_export(sys.argv[1], model=build_model(config, vocabulary.size), config=config, vocabulary=vocabulary, steps_completed=1)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so that a write past the limit fails instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
try:
    export.write_export(sys.argv[1], model=build_model(config, vocabulary.size), config=config, vocabulary=vocabulary, steps_completed=2)
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
    model = build_model(CONFIG, VOCABULARY.size)

    def save_weights_on_a_full_disk(path):
        open(path, "wb").write(b"half a file")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(model, "save_weights", save_weights_on_a_full_disk)
    with pytest.raises(UserError, match="No space left on device; nothing was written there. Free some disk space"):
        export.write_export(tmp_path / "export", model=model, config=CONFIG, vocabulary=VOCABULARY, steps_completed=1)
    assert list(tmp_path.iterdir()) == []
