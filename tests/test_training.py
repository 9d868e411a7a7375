"""Training: run(cfg) as train.py calls it, and the loop's parts: early stopping on validation, the best weights kept,
a diverging run stopped with its last good checkpoint kept."""

import dataclasses
import functools
import itertools
import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import api
import export
import optimization
import training
import distribute
from checkpoints import TrainingCheckpoints
from distribute import make_strategy, use_precision
from errors import UserError
from models.char_lstm import build_model
from pipeline.datasets import make_datasets


@pytest.mark.smoke
@pytest.mark.parametrize("stream_windows", [0, 4], ids=["windows", "streams"])
def test_run_trains_exports_and_resumes_as_train_py_does(tiny_config, tmp_path, capsys, stream_windows):
    cfg = dataclasses.replace(
        tiny_config, steps=40, learning_rate=0.01, log_every=20, sample_length=0, stream_windows=stream_windows
    )
    export_dir = tmp_path / "export"

    result = training.run(cfg)

    assert result.steps_completed == 40 and not result.interrupted and not result.stopped_early
    assert result.export_dir == export_dir
    assert keras.mixed_precision.global_policy().name == "float32"  # as before the run, whatever --precision chose
    exported = export.load_export(export_dir)
    assert result.train_bits_per_char < math.log2(exported.vocabulary.size) - 1  # a uniform guess: 6.25 bits/char
    assert result.best_step == 40  # the only validation: at the end
    output = capsys.readouterr().out
    assert output.endswith(
        f"done: 40 steps, train {result.train_bits_per_char:.3f} bits/char, "
        f"best validation {result.validation_bits_per_char:.3f} bits/char (step 40)\n"
        f"exported to {export_dir}; generate with: python generate.py --export_dir={export_dir}\n"
    )
    # The export holds all that generation needs, and the paths the run chose beside it.
    assert exported.steps_completed == 40
    assert exported.config == dataclasses.replace(cfg, checkpoint_dir=f"{export_dir}.checkpoints", logdir=f"{export_dir}.logs")
    text = api.load(export_dir).generate("Alice ", length=20, seed=1)
    assert text.startswith("Alice ") and len(text) == len("Alice ") + 20

    # Called again in the same process (the directories' locks were let go) with more steps, it resumes.
    resumed = training.run(dataclasses.replace(cfg, steps=50))

    assert f"resuming from the checkpoint of step 40 in {export_dir}.checkpoints\n" in capsys.readouterr().out
    assert resumed.steps_completed == 50 and export.load_export(export_dir).steps_completed == 50


def test_patience_stops_training_and_keeps_the_best_weights(tiny_config, tmp_path, monkeypatch):
    cfg = dataclasses.replace(tiny_config, patience=2, checkpoint_every=100, logdir=str(tmp_path / "logs"))
    data = dataclasses.replace(make_datasets(cfg), steps_per_epoch=2)
    # Validation scores, one per epoch: the second is the best, then two epochs without improvement.
    scores = iter([3.0, 2.5, 2.7, 2.6, 2.4])
    monkeypatch.setattr(training, "make_evaluate", lambda model, strategy, **_: lambda batches: (next(scores), 100))
    strategy = make_strategy("default")
    model = build_model(cfg.model, data.vocabulary.size)
    total_steps = tf.Variable(20, dtype=tf.int64)
    optimizer = optimization.make_optimizer(cfg, model, total_steps=total_steps)
    checkpoints = TrainingCheckpoints(str(tmp_path / "ckpt"), model=model, optimizer=optimizer, keep=2)
    checkpoints.restore_or_start(cfg, data.vocabulary)
    weights_at_step_4 = []
    original_record = checkpoints.record_validation

    def record_validation(bits_per_char):
        if int(checkpoints.step.numpy()) == 4:
            weights_at_step_4.extend(w.numpy() for w in model.weights)
        return original_record(bits_per_char)

    checkpoints.record_validation = record_validation
    samples = []
    result = training.train(
        cfg,
        model=model,
        optimizer=optimizer,
        data=data,
        strategy=strategy,
        checkpoints=checkpoints,
        total_steps=total_steps,
        sample_text=lambda: samples.append("sampled") or "sampled",
    )

    assert result.stopped_early and not result.interrupted
    assert result.steps_completed == 8  # epochs end at steps 2, 4, 6, 8; step 4 scored best
    assert result.best_step == 4 and result.validation_bits_per_char == pytest.approx(2.5)
    assert len(samples) == 4
    for best, now in zip(weights_at_step_4, model.weights):
        np.testing.assert_array_equal(best, now.numpy())


def test_mixed_precision_keeps_weights_logits_and_loss_in_float32(tiny_config):
    strategy = make_strategy("default")
    with use_precision("float16", strategy) as policy:
        model = build_model(tiny_config.model, 20)
        optimizer = optimization.make_optimizer(tiny_config, model, total_steps=10)
    assert policy == "mixed_float16" and keras.mixed_precision.global_policy().name == "float32"
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)  # float16 gradients would underflow
    assert model.get_layer("lstm_1").compute_dtype == "float16"  # the model keeps the policy it was built under
    assert all(w.dtype == "float32" for w in model.weights)
    ids = tf.data.Dataset.from_tensors((tf.ones([4, 8], tf.int32), tf.ones([4, 8], tf.int32))).repeat()
    losses = training.make_train_steps(model, optimizer, strategy, global_batch_size=4)(iter(ids), 2)
    assert losses.dtype == np.float32 and losses.shape == (2,) and np.isfinite(losses).all()
    assert model(tf.ones([1, 3], tf.int32)).dtype == "float32"


@pytest.mark.parametrize(
    "losses, vocab_size, diverged",
    [
        # The first 20 losses (nats) of the default model at --learning_rate=0.03 on tinyshakespeare: noisy, but
        # 5.9 on average, below 3 x ln(66) = 12.57.
        ([4.2, 4.3, 7.0, 8.0, 6.0, 6.7, 6.6, 6.2, 5.8, 7.3, 7.0, 6.8, 6.3, 6.1, 5.7, 4.9, 4.7, 4.9, 4.9, 4.9], 66, False),
        # The same model at --learning_rate=1.0: 88.9 on average.
        ([4.2, 53, 118, 129, 91, 38, 58, 72, 73, 77, 82, 102, 122, 131, 142, 125, 112, 99, 82, 68], 66, True),
        ([4.2] * 19 + [90.0], 66, False),  # one spike: 8.5 on average
        ([4.2] + [14.0] * 19, 66, True),  # 13.5 on average
        ([13.0] * 19, 66, False),  # fewer than 20 steps decide nothing
        ([13.0] * 20, 6002, False),  # a large vocabulary: 3 x ln(6002) = 26.1
        ([5.0] * 20, 4, True),  # a small one: 3 x ln(4) = 4.16
    ],
)
def test_a_loss_averaging_3_times_a_uniform_guess_over_20_steps_has_diverged(losses, vocab_size, diverged):
    assert training.has_diverged(losses, vocab_size=vocab_size) == diverged


def _start_training(cfg, data, checkpoint_dir, *, total_steps):
    """A fresh model, optimizer and checkpoints for training.train, as training.run makes them."""
    model = build_model(cfg.model, data.vocabulary.size)
    total_steps = tf.Variable(total_steps, dtype=tf.int64)
    optimizer = optimization.make_optimizer(cfg, model, total_steps=total_steps)
    checkpoints = TrainingCheckpoints(str(checkpoint_dir), model=model, optimizer=optimizer, keep=2)
    checkpoints.restore_or_start(cfg, data.vocabulary)
    strategy = make_strategy("default")
    return dict(model=model, optimizer=optimizer, checkpoints=checkpoints, strategy=strategy, total_steps=total_steps)


def test_an_exploding_loss_stops_training_and_keeps_the_checkpoint_from_before(tiny_config, tmp_path):
    # A model of 128 units at --learning_rate=1.0: the loss starts at ln(76) = 4.33 nats and passes 13 at step 3.
    cfg = dataclasses.replace(
        tiny_config, embedding_dim=16, rnn_units=128, learning_rate=1.0, checkpoint_every=1, logdir=str(tmp_path / "logs")
    )
    keras.utils.set_random_seed(0)  # first, as training.run does: the batches' order depends on TensorFlow's global seed
    data = make_datasets(cfg)
    parts = _start_training(cfg, data, tmp_path / "ckpt", total_steps=100)

    with pytest.raises(UserError) as raised:
        training.train(cfg, data=data, **parts)

    assert str(raised.value).startswith("training diverged at step 20: the loss averaged ")
    assert str(raised.value).endswith(
        " bits/char over the last 20 steps, more than 3 times the 6.25 bits/char of a uniform guess over its 76 ids; "
        "lower --learning_rate (now 1) or raise --warmup_steps (now 0; e.g. 100), then rerun: "
        "training resumes from the checkpoint of step 2, saved before the loss climbed"
    )
    # A checkpoint was due at every step, but none was saved once the loss had passed 3 x 4.33 nats (at step 3).
    assert tf.train.latest_checkpoint(tmp_path / "ckpt").endswith("ckpt-2")


def test_weights_that_became_nan_are_never_checkpointed(tiny_config, tmp_path, monkeypatch):
    cfg = dataclasses.replace(tiny_config, checkpoint_every=1, logdir=str(tmp_path / "logs"))
    data = make_datasets(cfg)
    parts = _start_training(cfg, data, tmp_path / "ckpt", total_steps=10)
    # Each step: the loss it reports (of the weights before its update), and the value its update leaves in the
    # embedding. The third update makes them NaN; the loss shows it only at the fourth step.
    steps = iter([(4.3, 0.01), (4.2, 0.02), (4.1, np.nan), (np.nan, np.nan)])

    def make_train_steps(model, optimizer, strategy, *, global_batch_size, streams):
        def train_steps(batches, num_steps):
            assert num_steps == 1  # checkpoint_every=1: the host looks after every step
            loss, weight = next(steps)
            embedding = model.get_layer("embedding").embeddings
            embedding.assign(tf.fill(embedding.shape, weight))
            return np.array([loss], np.float32)

        return train_steps

    monkeypatch.setattr(training, "make_train_steps", make_train_steps)
    with pytest.raises(
        UserError,
        match=r"^training diverged at step 3: the weights became infinite or NaN; lower --learning_rate \(now 0.001\) .*"
        "training resumes from the checkpoint of step 2, saved before the loss climbed$",
    ):
        training.train(cfg, data=data, **parts)
    assert tf.train.latest_checkpoint(tmp_path / "ckpt").endswith("ckpt-2")


def test_several_steps_per_call_train_the_same_weights_and_stop_where_the_host_has_work(tiny_config, tmp_path, monkeypatch):
    calls = []
    make_train_steps = training.make_train_steps

    def counting_calls(*args, **kwargs):
        train_steps = make_train_steps(*args, **kwargs)

        def counted(batches, num_steps):
            calls.append(num_steps)
            return train_steps(batches, num_steps)

        return counted

    monkeypatch.setattr(training, "make_train_steps", counting_calls)
    weights = {}
    for steps_per_call in (1, 8):
        cfg = dataclasses.replace(
            tiny_config,
            steps=20,
            log_every=10,
            checkpoint_every=6,
            sample_length=0,
            steps_per_call=steps_per_call,
            export_dir=str(tmp_path / f"export{steps_per_call}"),
        )
        calls.clear()
        training.run(cfg)
        weights[steps_per_call] = export.load_model(export.load_export(cfg.export_dir)).get_weights()

    # Calls end at checkpoints (6, 12, 18), progress lines (10, 20) and the end: the host looks in at each.
    assert calls == [6, 4, 2, 6, 2]
    for one_per_call, eight_per_call in zip(weights[1], weights[8]):
        np.testing.assert_allclose(one_per_call, eight_per_call, rtol=0, atol=1e-6)


def test_steps_per_call_auto_fills_the_time_between_progress_lines_on_a_tpu_only():
    assert distribute.auto_steps_per_call(make_strategy("default"), log_every=100) == 1
    assert training._steps_in_next_call(0, 100, host_work_every=(50, 40), total_steps=1000) == 40
    assert training._steps_in_next_call(40, 100, host_work_every=(50, 40), total_steps=1000) == 10
    assert training._steps_in_next_call(995, 100, host_work_every=(500,), total_steps=1000) == 5


def test_train_minutes_plans_the_steps_that_fit_and_a_resumed_run_keeps_the_plan(tiny_config, tmp_path, capsys, monkeypatch):
    # A clock that moves 1/64 s at each look (once per step on a CPU) makes the plan exact: after the
    # compiling step, steps 2-51 take 50/64 s, and the 3.75 s budget leaves room for 189 steps more.
    clock = itertools.count(step=1 / 64)
    monkeypatch.setattr(training, "StepPlanner", functools.partial(training.StepPlanner, clock=lambda: next(clock)))
    cfg = dataclasses.replace(
        tiny_config, train_minutes=0.0625, warmup_steps=20, lr_decay="cosine", log_every=25, sample_length=0,
        logdir=str(tmp_path / "logs"),
    )

    result = training.run(cfg)

    output = capsys.readouterr().out
    assert "training for about 0.0625 minutes (--train_minutes), steps of 16 x 32 characters (epochs of 260 steps)" in output
    assert "--train_minutes=0.0625: 240 steps planned, at the 64.0 steps/s of steps 2-51\n" in output
    assert re.search(r"^step 25/\?  loss [\d.]+  [\d.]+ bits/char  [\d,]+ chars/s$", output, re.M)  # no total, no ETA yet
    assert re.search(r"^step 75/240  loss .* chars/s  ETA \dm\d\ds$", output, re.M)
    assert result.steps_completed == 240 and "step 240/240  validation" in output
    # The learning rate decayed over the planned steps: at the last one it is --final_lr_fraction of the peak.
    rates = {
        event.step: float(tf.make_ndarray(value.tensor))
        for event_file in (tmp_path / "logs").glob("events.out.tfevents.*")
        for event in tf.compat.v1.train.summary_iterator(str(event_file))
        for value in event.summary.value
        if value.tag == "train/learning_rate"
    }
    assert rates[240] == pytest.approx(cfg.final_lr_fraction * cfg.learning_rate)

    # Run again, the checkpoints keep the plan (a run that resumes mid-way trains to the same step with the same schedule).
    again = training.run(cfg)

    output = capsys.readouterr().out
    assert "training 240 steps of 16 x 32 characters (0.92 epochs of 260 steps, planned by --train_minutes=0.0625 when this run started)" in output
    assert "training is already complete" in output and "ask for more: --train_minutes=0 --steps=1240" in output
    assert again.steps_completed == 240
    # Another --train_minutes does not change the plan, and the line says so.
    training.run(dataclasses.replace(cfg, train_minutes=20.0))
    assert (
        "(0.92 epochs of 260 steps, planned by --train_minutes=0.0625 when this run started; a resumed run keeps its plan, "
        "so --train_minutes=20 changes nothing: --train_minutes=0 --steps=N does)"
    ) in capsys.readouterr().out
