"""The training loop: compiled (and distributed) steps, a learning-rate schedule, validation in bits per
character, early stopping and checkpoints. Progress lines and TensorBoard: progress.py."""

import collections
import dataclasses
import math
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from checkpoints import TrainingCheckpoints
from config import Config
from errors import UserError
from pipeline.datasets import Datasets
from progress import LN2, ProgressReport

@dataclasses.dataclass
class TrainResult:
    steps_completed: int  # counted from the first run, resumed runs included
    train_bits_per_char: float  # mean over the last log_every steps of this run
    validation_bits_per_char: float | None  # of the weights kept (the best); None without validation text
    best_step: int | None  # the step whose weights scored best on validation, and are in the model now
    chars_per_sec: float
    interrupted: bool  # stopped early by Ctrl-C
    stopped_early: bool  # --patience ran out


class WarmupThenDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Rises linearly from 0 over `warmup_steps`, then decays (cosine or linear) to `final_fraction` of the peak."""

    def __init__(self, peak: float, *, warmup_steps: int, total_steps: int, decay: str, final_fraction: float):
        self.peak, self.warmup_steps, self.total_steps = peak, warmup_steps, total_steps
        self.decay, self.final_fraction = decay, final_fraction

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = tf.cast(self.warmup_steps, tf.float32)
        progress = tf.clip_by_value((step - warmup) / max(self.total_steps - self.warmup_steps, 1), 0.0, 1.0)
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
            total_steps=self.total_steps,
            decay=self.decay,
            final_fraction=self.final_fraction,
        )


def make_optimizer(
    cfg: Config, model: keras.Model, *, total_steps: int, num_replicas: int = 1
) -> keras.optimizers.Optimizer:
    """Adam for `model` on the --lr_decay schedule with --clipnorm, loss-scaled when the model computes in float16.

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
    optimizer = keras.optimizers.Adam(schedule, global_clipnorm=cfg.clipnorm / num_replicas if cfg.clipnorm else None)
    if keras.mixed_precision.global_policy().compute_dtype == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)  # float16 gradients would underflow otherwise
    optimizer.build(model.trainable_variables)
    return optimizer


def make_train_step(
    model: keras.Model, optimizer: keras.optimizers.Optimizer, strategy: tf.distribute.Strategy, *, global_batch_size: int
):
    """A compiled function: an iterator of (inputs, targets) batches -> mean cross-entropy in nats of one step.

    Each replica sums its share of the loss over the global batch's characters, so the replicas'
    gradients add up to the gradient of the global batch's mean loss.
    """

    def replica_step(inputs, targets):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(inputs, training=True), tf.float32)  # [batch, seq_len, vocab]
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
            loss = tf.reduce_sum(losses) / tf.cast(global_batch_size * tf.shape(targets)[1], tf.float32)
            scaled_loss = optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    @tf.function
    def train_step(iterator):
        per_replica_loss = strategy.run(replica_step, args=next(iterator))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica_loss, axis=None)

    return train_step


def make_evaluate(model: keras.Model, strategy: tf.distribute.Strategy | None = None):
    """A function: batches of (inputs, targets) -> (bits per character, number of characters scored)."""
    strategy = strategy or tf.distribute.get_strategy()

    def replica_sums(inputs, targets):
        logits = tf.cast(model(inputs, training=False), tf.float32)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)  # [batch, seq_len]
        return tf.reduce_sum(losses), tf.size(targets)

    @tf.function
    def summed_loss(batch):
        nats, chars = strategy.run(replica_sums, args=batch)
        return (
            strategy.reduce(tf.distribute.ReduceOp.SUM, nats, axis=None),
            strategy.reduce(tf.distribute.ReduceOp.SUM, chars, axis=None),
        )

    def evaluate(batches: tf.data.Dataset) -> tuple[float, int]:
        total_nats, total_chars = 0.0, 0
        for batch in strategy.experimental_distribute_dataset(batches):
            nats, chars = summed_loss(batch)
            total_nats += float(nats)
            total_chars += int(chars)
        return total_nats / max(total_chars, 1) / LN2, total_chars

    return evaluate


def train(
    cfg: Config,
    *,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    data: Datasets,
    strategy: tf.distribute.Strategy,
    checkpoints: TrainingCheckpoints,
    total_steps: int,
    write_logs: bool = True,
    sample_text: Callable[[], str] | None = None,
) -> TrainResult:
    """Trains from the step `checkpoints` holds up to `total_steps`, validating after every epoch and at the end.

    Checkpoints are saved every --checkpoint_every steps, after every epoch, at the end and on
    Ctrl-C (which ends training early with `interrupted` set, so the caller can still export).
    When validation text exists the model ends up holding the weights that scored best on it.
    """
    first_step = int(checkpoints.step.numpy())
    chars_per_step = cfg.batch_size * cfg.seq_len
    # The batches are a fixed function of --seed, so skipping those already trained on resumes the stream.
    batches = iter(strategy.experimental_distribute_dataset(data.train.skip(first_step)))
    train_step = make_train_step(model, optimizer, strategy, global_batch_size=cfg.batch_size)
    evaluate = make_evaluate(model, strategy)
    writer = tf.summary.create_file_writer(cfg.logdir) if write_logs else tf.summary.create_noop_writer()
    progress = ProgressReport(
        total_steps=total_steps, chars_per_step=chars_per_step, log_every=cfg.log_every, writer=writer, first_step=first_step
    )
    last_losses = collections.deque(maxlen=cfg.log_every)
    interrupted = stopped_early = False
    try:
        for step in range(first_step + 1, total_steps + 1):
            loss = float(train_step(batches))
            if not math.isfinite(loss):
                raise UserError(f"training diverged: the loss became {loss} at step {step}; lower --learning_rate")
            checkpoints.step.assign(step)
            last_losses.append(loss)
            progress.update(step, loss, learning_rate=lambda: _current_learning_rate(optimizer))
            end_of_epoch = step % data.steps_per_epoch == 0
            if data.validation is not None and (end_of_epoch or step == total_steps):
                bits_per_char, _ = evaluate(data.validation)
                improved = checkpoints.record_validation(bits_per_char)
                progress.validation(step, bits_per_char, improved=improved)
                if sample_text is not None:
                    progress.sample(step, sample_text())
                stopped_early = 0 < cfg.patience <= int(checkpoints.epochs_without_improvement.numpy())
            if step % cfg.checkpoint_every == 0 or end_of_epoch or step == total_steps or stopped_early:
                checkpoints.save()
            if stopped_early:
                progress.note(f"stopping early: no better validation score in the last {cfg.patience} epoch(s) (--patience)")
                break
    except KeyboardInterrupt:
        interrupted = True  # Ctrl-C: keep what was learned so far, and make it resumable
        checkpoints.save()
    finally:
        writer.close()
    best_step = checkpoints.restore_best_weights()
    best = float(checkpoints.best_validation.numpy())
    return TrainResult(
        steps_completed=int(checkpoints.step.numpy()),
        train_bits_per_char=sum(last_losses) / len(last_losses) / LN2 if last_losses else float("nan"),
        validation_bits_per_char=best if math.isfinite(best) else None,
        best_step=best_step,
        chars_per_sec=progress.chars_per_sec,
        interrupted=interrupted,
        stopped_early=stopped_early,
    )


def _current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    return float(np.asarray(optimizer.learning_rate))
