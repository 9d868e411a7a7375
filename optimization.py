"""The optimizer training uses: Adam on a warm-up-then-decay learning-rate schedule, with gradient clipping."""

import math

import keras
import tensorflow as tf

from config import Config


class WarmupThenDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Rises linearly from 0 over `warmup_steps`, then decays (cosine or linear) to `final_fraction` of the peak.

    `total_steps` may be a variable, for a total planned while training runs (--train_minutes, step_plan.py);
    while it is 0 (not planned yet) the rate does not decay.
    """

    def __init__(self, peak: float, *, warmup_steps: int, total_steps: int | tf.Variable, decay: str, final_fraction: float):
        self.peak, self.warmup_steps, self.total_steps = peak, warmup_steps, total_steps
        self.decay, self.final_fraction = decay, final_fraction

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = tf.cast(self.warmup_steps, tf.float32)
        total = tf.cast(self.total_steps, tf.float32)
        progress = tf.clip_by_value((step - warmup) / tf.maximum(total - warmup, 1.0), 0.0, 1.0)
        progress = tf.where(total > 0, progress, 0.0)
        if self.decay == "cosine":
            factor = self.final_fraction + (1 - self.final_fraction) * 0.5 * (1 + tf.cos(math.pi * progress))
        elif self.decay == "linear":
            factor = 1 - (1 - self.final_fraction) * progress
        else:
            factor = tf.constant(1.0)
        warming = self.peak * (step + 1) / tf.maximum(warmup, 1.0)
        return tf.where(step < warmup, warming, self.peak * factor)

    def get_config(self):
        return dict(
            peak=self.peak,
            warmup_steps=self.warmup_steps,
            total_steps=self.total_steps if isinstance(self.total_steps, int) else int(self.total_steps.numpy()),
            decay=self.decay,
            final_fraction=self.final_fraction,
        )


def make_optimizer(
    cfg: Config, model: keras.Model, *, total_steps: int | tf.Variable, num_replicas: int = 1
) -> keras.optimizers.Optimizer:
    """Adam (--adam_beta2) for `model` on the --lr_decay schedule with --clipnorm, loss-scaled when the model computes in float16.

    Call it in the strategy's scope: its variables are made here, beside the model's, not later
    inside a compiled step (where a distributed strategy cannot create them).

    Keras clips each replica's share of the gradient before adding them up, so with n replicas each
    share is clipped to clipnorm / n: the sum then stays within clipnorm, as on one device.
    """
    schedule = WarmupThenDecay(
        cfg.learning_rate,
        warmup_steps=cfg.warmup_steps,
        total_steps=total_steps,
        decay=cfg.lr_decay,
        final_fraction=cfg.final_lr_fraction,
    )
    optimizer = keras.optimizers.Adam(
        schedule, beta_2=cfg.adam_beta2, global_clipnorm=cfg.clipnorm / num_replicas if cfg.clipnorm else None
    )
    if keras.mixed_precision.global_policy().compute_dtype == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)  # float16 gradients would underflow otherwise
    optimizer.build(model.trainable_variables)
    return optimizer
