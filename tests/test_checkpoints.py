"""Training checkpoints: resume where a run stopped, never into a different run."""

import dataclasses
import os
import stat

import keras
import numpy as np
import pytest
import tensorflow as tf

import checkpoints as checkpoints_lib
import workdirs
from checkpoints import TrainingCheckpoints
from errors import UserError
from models.char_lstm import build_model
from pipeline.vocab import Vocabulary

VOCABULARY = Vocabulary("abcdefgh")


def open_checkpoints(cfg, directory, vocab_size=VOCABULARY.size):
    model = build_model(cfg.model, vocab_size)
    optimizer = keras.optimizers.Adam(0.01)
    optimizer.build(model.trainable_variables)
    return model, TrainingCheckpoints(str(directory), model=model, optimizer=optimizer, keep=2)


def train_a_little(model, checkpoints, steps):
    ids = np.arange(12, dtype=np.int32).reshape(2, 6) % VOCABULARY.size
    optimizer = checkpoints._state.optimizer
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(ids)))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        checkpoints.step.assign_add(1)


def test_a_fresh_directory_starts_at_step_0(tiny_config, tmp_path):
    _, checkpoints = open_checkpoints(tiny_config, tmp_path / "ckpt")
    assert checkpoints.restore_or_start(tiny_config, VOCABULARY) == 0
    assert (tmp_path / "ckpt" / "run.json").is_file()


def test_resuming_restores_step_weights_and_optimizer(tiny_config, tmp_path):
    model, checkpoints = open_checkpoints(tiny_config, tmp_path / "ckpt")
    checkpoints.restore_or_start(tiny_config, VOCABULARY)
    train_a_little(model, checkpoints, steps=3)
    checkpoints.save()

    resumed_model, resumed = open_checkpoints(tiny_config, tmp_path / "ckpt")
    assert resumed.restore_or_start(tiny_config, VOCABULARY) == 3
    for saved, restored in zip(model.weights, resumed_model.weights):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())
    assert int(resumed._state.optimizer.iterations.numpy()) == 3


def test_the_latest_checkpoints_are_kept(tiny_config, tmp_path):
    model, checkpoints = open_checkpoints(tiny_config, tmp_path / "ckpt")
    checkpoints.restore_or_start(tiny_config, VOCABULARY)
    for _ in range(4):
        train_a_little(model, checkpoints, steps=1)
        checkpoints.save()
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("ckpt-*.index")) == ["ckpt-3.index", "ckpt-4.index"]


def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(tiny_config, tmp_path, capsys):
    model, checkpoints = open_checkpoints(tiny_config, tmp_path / "ckpt")
    checkpoints.restore_or_start(tiny_config, VOCABULARY)
    for _ in range(2):
        train_a_little(model, checkpoints, steps=1)
        checkpoints.save()
    data_file = next((tmp_path / "ckpt").glob("ckpt-2.data-*"))
    data_file.write_bytes(data_file.read_bytes()[:100])

    _, resumed = open_checkpoints(tiny_config, tmp_path / "ckpt")
    assert resumed.restore_or_start(tiny_config, VOCABULARY) == 1
    assert "ckpt-2 cannot be read" in capsys.readouterr().out


@pytest.mark.parametrize(
    "change, named",
    [
        ({"rnn_units": 24}, "--rnn_units was 16, now 24"),
        ({"seq_len": 40}, "--seq_len was 32, now 40"),
        ({"books": (84,)}, "--books was 11, now 84"),
    ],
)
def test_checkpoints_of_a_different_run_are_refused(tiny_config, tmp_path, change, named):
    model, checkpoints = open_checkpoints(tiny_config, tmp_path / "ckpt")
    checkpoints.restore_or_start(tiny_config, VOCABULARY)
    train_a_little(model, checkpoints, steps=1)
    checkpoints.save()

    other = dataclasses.replace(tiny_config, **change)
    _, resumed = open_checkpoints(other, tmp_path / "ckpt")
    with pytest.raises(UserError, match="belong to a different run") as error:
        resumed.restore_or_start(other, VOCABULARY)
    assert named in str(error.value) and "--noresume" in str(error.value)


def test_another_vocabulary_is_refused(tiny_config, tmp_path):
    model, checkpoints = open_checkpoints(tiny_config, tmp_path / "ckpt")
    checkpoints.restore_or_start(tiny_config, VOCABULARY)
    checkpoints.save()
    other_vocabulary = Vocabulary("abcdefgz")
    _, resumed = open_checkpoints(tiny_config, tmp_path / "ckpt", vocab_size=other_vocabulary.size)
    with pytest.raises(UserError, match="the vocabulary differs"):
        resumed.restore_or_start(tiny_config, other_vocabulary)


def test_noresume_starts_over(tiny_config, tmp_path):
    model, checkpoints = open_checkpoints(tiny_config, tmp_path / "ckpt")
    checkpoints.restore_or_start(tiny_config, VOCABULARY)
    train_a_little(model, checkpoints, steps=2)
    checkpoints.save()
    checkpoints.record_validation(3.0)  # best/ holds these weights now

    (tmp_path / "ckpt" / "notes.txt").write_text("mine")
    (tmp_path / "ckpt" / "best" / "best_sample.txt").write_text("also mine")

    fresh = dataclasses.replace(tiny_config, resume=False, rnn_units=24)
    model, restarted = open_checkpoints(fresh, tmp_path / "ckpt")
    assert restarted.restore_or_start(fresh, VOCABULARY) == 0
    assert not list((tmp_path / "ckpt").glob("ckpt-*"))
    assert not list((tmp_path / "ckpt" / "best").glob("ckpt-*"))
    assert (tmp_path / "ckpt" / "notes.txt").read_text() == "mine"  # only checkpoint files are deleted
    assert (tmp_path / "ckpt" / "best" / "best_sample.txt").read_text() == "also mine"

    # The new run's checkpoints are saved, even at the steps the deleted ones had.
    train_a_little(model, restarted, steps=2)
    restarted.save()
    _, resumed = open_checkpoints(dataclasses.replace(fresh, resume=True), tmp_path / "ckpt")
    assert resumed.restore_or_start(dataclasses.replace(fresh, resume=True), VOCABULARY) == 2


def test_the_best_validation_weights_come_back(tiny_config, tmp_path):
    model, checkpoints = open_checkpoints(tiny_config, tmp_path / "ckpt")
    checkpoints.restore_or_start(tiny_config, VOCABULARY)
    train_a_little(model, checkpoints, steps=1)
    assert checkpoints.record_validation(3.0)
    best_weights = [w.numpy() for w in model.weights]
    train_a_little(model, checkpoints, steps=1)
    assert not checkpoints.record_validation(3.5)
    assert int(checkpoints.epochs_without_improvement.numpy()) == 1

    assert checkpoints.restore_best_weights() == 1
    for best, now in zip(best_weights, model.weights):
        np.testing.assert_array_equal(best, now.numpy())


def test_a_directory_of_the_users_is_refused_and_kept(tiny_config, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "checkpoint").write_text("my own file, which happens to have this name")
    with pytest.raises(UserError, match="holds files that are not charbook's checkpoints \\(checkpoint, and no charbook.json\\)"):
        checkpoints_lib.check_can_use(tmp_path / "mine")
    _, checkpoints = open_checkpoints(tiny_config, tmp_path / "mine")
    with pytest.raises(UserError, match="choose another --checkpoint_dir"):
        checkpoints.restore_or_start(dataclasses.replace(tiny_config, resume=False), VOCABULARY)
    assert os.listdir(tmp_path / "mine") == ["checkpoint"]
    assert (tmp_path / "mine" / "checkpoint").read_text() == "my own file, which happens to have this name"


def test_an_export_is_not_a_checkpoint_directory(tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "charbook.json").write_text(workdirs.marker_json(workdirs.EXPORT, format_version=1))
    with pytest.raises(UserError, match="holds charbook's export, not checkpoints"):
        checkpoints_lib.check_can_use(tmp_path / "export")


def test_checkpoints_from_before_the_marker_resume_and_gain_it(tiny_config, tmp_path):
    model, checkpoints = open_checkpoints(tiny_config, tmp_path / "ckpt")
    checkpoints.restore_or_start(tiny_config, VOCABULARY)
    train_a_little(model, checkpoints, steps=2)
    checkpoints.save()
    checkpoints.record_validation(3.0)
    (tmp_path / "ckpt" / "charbook.json").unlink()  # as checkpoints were written until the marker came

    checkpoints_lib.check_can_use(tmp_path / "ckpt")
    _, resumed = open_checkpoints(tiny_config, tmp_path / "ckpt")
    assert resumed.restore_or_start(tiny_config, VOCABULARY) == 2
    assert workdirs.read_marker(tmp_path / "ckpt")["kind"] == "checkpoints"


def test_checkpoints_follow_the_umask(tiny_config, tmp_path):
    old = os.umask(0o027)
    try:
        model, checkpoints = open_checkpoints(tiny_config, tmp_path / "ckpt")
        checkpoints.restore_or_start(tiny_config, VOCABULARY)
        checkpoints.save()
        checkpoints.record_validation(3.0)
    finally:
        os.umask(old)
    modes = {path.relative_to(tmp_path).as_posix(): stat.S_IMODE(path.stat().st_mode) for path in tmp_path.rglob("*")}
    assert modes["ckpt"] == modes["ckpt/best"] == 0o750, modes
    assert {mode for path, mode in modes.items() if path not in ("ckpt", "ckpt/best")} == {0o640}, modes
