"""The training loop's parts: the learning-rate schedule, early stopping on validation, the best weights kept."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

import training
from checkpoints import TrainingCheckpoints
from distribute import make_strategy, set_precision
from models.char_lstm import build_model
from pipeline.datasets import make_datasets


@pytest.mark.parametrize(
    "decay, expected",
    [
        # warm-up over 4 steps to the peak 1.0, then down to 0.1 at step 14
        ("constant", [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0]),
        ("linear", [0.25, 0.5, 0.75, 1.0, 0.91, 0.55, 0.1]),
        ("cosine", [0.25, 0.5, 0.75, 1.0, 0.978, 0.55, 0.1]),
    ],
)
def test_learning_rate_warms_up_then_decays(decay, expected):
    schedule = training.WarmupThenDecay(1.0, warmup_steps=4, total_steps=14, decay=decay, final_fraction=0.1)
    steps = [0, 1, 2, 3, 5, 9, 14]
    np.testing.assert_allclose([float(schedule(step)) for step in steps], expected, atol=0.005)


def test_patience_stops_training_and_keeps_the_best_weights(tiny_config, tmp_path, monkeypatch):
    cfg = dataclasses.replace(tiny_config, patience=2, checkpoint_every=100, logdir=str(tmp_path / "logs"))
    data = dataclasses.replace(make_datasets(cfg), steps_per_epoch=2)
    # Validation scores, one per epoch: the second is the best, then two epochs without improvement.
    scores = iter([3.0, 2.5, 2.7, 2.6, 2.4])
    monkeypatch.setattr(training, "make_evaluate", lambda model, strategy: lambda batches: (next(scores), 100))
    strategy = make_strategy("default")
    model = build_model(cfg, data.vocabulary.size)
    optimizer = training.make_optimizer(cfg, model, total_steps=20)
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
        total_steps=20,
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
    assert set_precision(True, strategy) == "mixed_float16"
    try:
        model = build_model(tiny_config, 20)
        optimizer = training.make_optimizer(tiny_config, model, total_steps=10)
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)  # float16 gradients would underflow
        assert model.get_layer("lstm_1").compute_dtype == "float16"
        assert all(w.dtype == "float32" for w in model.weights)
        ids = tf.data.Dataset.from_tensors((tf.ones([4, 8], tf.int32), tf.ones([4, 8], tf.int32))).repeat()
        train_step = training.make_train_step(model, optimizer, strategy, global_batch_size=4)
        loss = train_step(iter(ids))
        assert loss.dtype == tf.float32 and np.isfinite(loss.numpy())
        assert model(tf.ones([1, 3], tf.int32)).dtype == "float32"
    finally:
        set_precision(False, strategy)
