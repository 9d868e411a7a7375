"""The optimizer: Adam with the settings given, on a linear warm-up to the peak, then constant, linear or cosine decay."""

import numpy as np
import pytest
import tensorflow as tf

import optimization
from config import Config
from models.char_lstm import build_model


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
    schedule = optimization.WarmupThenDecay(1.0, warmup_steps=4, total_steps=14, decay=decay, final_fraction=0.1)
    steps = [0, 1, 2, 3, 5, 9, 14]
    np.testing.assert_allclose([float(schedule(step)) for step in steps], expected, atol=0.005)


def test_a_total_planned_while_training_runs_is_read_from_its_variable():
    total = tf.Variable(0, dtype=tf.int64)  # --train_minutes: not planned yet
    schedule = optimization.WarmupThenDecay(1.0, warmup_steps=4, total_steps=total, decay="cosine", final_fraction=0.1)
    assert [float(schedule(step)) for step in (3, 5, 9)] == [1.0, 1.0, 1.0]  # no decay before the plan
    total.assign(14)
    np.testing.assert_allclose([float(schedule(step)) for step in (5, 9, 14)], [0.978, 0.55, 0.1], atol=0.005)
    assert schedule.get_config()["total_steps"] == 14


def test_optimizer_takes_beta2_and_clipping_from_the_settings():
    model = build_model(Config(embedding_dim=4, rnn_units=8).model, vocab_size=10)
    model.build((None, None))
    cfg = Config(adam_beta2=0.99, clipnorm=2.0)
    optimizer = optimization.make_optimizer(cfg, model, total_steps=10)
    assert (optimizer.beta_2, optimizer.global_clipnorm) == (0.99, 2.0)
    two_replicas = optimization.make_optimizer(Config(), model, total_steps=10, num_replicas=2)
    assert (two_replicas.beta_2, two_replicas.global_clipnorm) == (0.999, 2.5)  # Keras' default; each share clipped to half
