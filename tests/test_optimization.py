"""The learning-rate schedule: a linear warm-up to the peak, then constant, linear or cosine decay."""

import numpy as np
import pytest

import optimization


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
