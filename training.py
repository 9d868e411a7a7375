"""The training loop: a compiled train step, validation in bits per character, progress lines, TensorBoard."""

import collections
import dataclasses
import math
import sys
import time

import keras
import tensorflow as tf

from errors import UserError

LN2 = math.log(2.0)


@dataclasses.dataclass
class TrainResult:
    steps_completed: int
    train_bits_per_char: float  # mean over the last log_every steps
    validation_bits_per_char: float | None  # after the last step; None without validation text
    chars_per_sec: float
    interrupted: bool  # stopped early by Ctrl-C


def make_train_step(model: keras.Model, optimizer: keras.optimizers.Optimizer):
    """A compiled function: (inputs, targets) int32 [batch, seq_len] -> mean cross-entropy in nats."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def train_step(inputs, targets):
        with tf.GradientTape() as tape:
            logits = model(inputs, training=True)  # [batch, seq_len, vocab]
            loss = loss_fn(targets, tf.cast(logits, tf.float32))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    return train_step


def make_evaluate(model: keras.Model):
    """A function: batches of (inputs, targets) -> (bits per character, number of characters scored)."""

    @tf.function
    def summed_loss(inputs, targets):
        logits = tf.cast(model(inputs, training=False), tf.float32)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)  # [batch, seq_len]
        return tf.reduce_sum(losses), tf.size(targets)

    def evaluate(batches: tf.data.Dataset) -> tuple[float, int]:
        total_nats, total_chars = 0.0, 0
        for inputs, targets in batches:
            nats, chars = summed_loss(inputs, targets)
            total_nats += float(nats)
            total_chars += int(chars)
        return total_nats / max(total_chars, 1) / LN2, total_chars

    return evaluate


class ProgressReport:
    """Prints 'step 120/3000  loss 2.31  3.33 bits/char  41,203 chars/s  ETA 4m12s'.

    On a terminal one status line updates in place; every `log_every` steps a line is kept
    (the only output when stdout is a file or a CI log) and the same numbers go to TensorBoard.
    """

    def __init__(self, *, total_steps: int, chars_per_step: int, log_every: int, writer, first_step: int = 0):
        self.total_steps = total_steps
        self.chars_per_step = chars_per_step
        self.log_every = log_every
        self.writer = writer
        self.interactive = sys.stdout.isatty()
        self.window_losses = []
        self.window_start_time = time.monotonic()
        self.window_start_step = first_step
        self.last_redraw = 0.0
        self.chars_per_sec = 0.0

    def update(self, step: int, loss: float) -> None:
        """Called after `step` steps (1-based) with that step's loss in nats."""
        self.window_losses.append(loss)
        now = time.monotonic()
        elapsed = now - self.window_start_time
        if elapsed > 0:
            self.chars_per_sec = (step - self.window_start_step) * self.chars_per_step / elapsed
        if step % self.log_every == 0 or step == self.total_steps:
            self._finish_line(step, self._status(step, self.mean_loss))
            with self.writer.as_default(step=step):
                tf.summary.scalar("train/loss", self.mean_loss)
                tf.summary.scalar("train/bits_per_char", self.mean_loss / LN2)
                tf.summary.scalar("train/chars_per_sec", self.chars_per_sec)
            self.window_losses = []
            self.window_start_time, self.window_start_step = now, step
        elif self.interactive and now - self.last_redraw > 0.25:
            self.last_redraw = now
            sys.stdout.write("\r" + self._status(step, sum(self.window_losses) / len(self.window_losses)))
            sys.stdout.flush()

    def validation(self, step: int, bits_per_char: float) -> None:
        self._finish_line(step, f"step {step:,}/{self.total_steps:,}  validation {bits_per_char:.3f} bits/char")
        with self.writer.as_default(step=step):
            tf.summary.scalar("validation/bits_per_char", bits_per_char)
            tf.summary.scalar("validation/loss", bits_per_char * LN2)

    @property
    def mean_loss(self) -> float:
        return sum(self.window_losses) / len(self.window_losses) if self.window_losses else float("nan")

    def _status(self, step: int, loss: float) -> str:
        remaining = (self.total_steps - step) * self.chars_per_step / self.chars_per_sec if self.chars_per_sec else 0
        return (
            f"step {step:,}/{self.total_steps:,}  loss {loss:.3f}  {loss / LN2:.3f} bits/char  "
            f"{self.chars_per_sec:,.0f} chars/s  ETA {_format_duration(remaining)}"
        )

    def _finish_line(self, step: int, text: str) -> None:
        prefix = "\r\033[K" if self.interactive else ""
        print(prefix + text, flush=True)
        self.writer.flush()


def train(
    model: keras.Model,
    train_batches: tf.data.Dataset,
    *,
    validation_batches: tf.data.Dataset | None,
    total_steps: int,
    steps_per_epoch: int,
    learning_rate: float,
    chars_per_step: int,
    log_every: int,
    logdir: str,
) -> TrainResult:
    """Runs `total_steps` steps of Adam on `train_batches`, validating after every epoch and at the end.

    Ctrl-C ends training early with `interrupted` set, so the caller can keep the model trained so far.
    """
    optimizer = keras.optimizers.Adam(learning_rate)
    train_step = make_train_step(model, optimizer)
    evaluate = make_evaluate(model)
    writer = tf.summary.create_file_writer(logdir)
    progress = ProgressReport(total_steps=total_steps, chars_per_step=chars_per_step, log_every=log_every, writer=writer)
    validation_bits_per_char = None
    last_losses = collections.deque(maxlen=log_every)
    steps_completed, interrupted = 0, False
    try:
        for step, (inputs, targets) in enumerate(train_batches.take(total_steps), start=1):
            loss = float(train_step(inputs, targets))
            if not math.isfinite(loss):
                raise UserError(f"training diverged: the loss became {loss} at step {step}; lower --learning_rate")
            steps_completed = step
            last_losses.append(loss)
            progress.update(step, loss)
            if validation_batches is not None and (step % steps_per_epoch == 0 or step == total_steps):
                validation_bits_per_char, _ = evaluate(validation_batches)
                progress.validation(step, validation_bits_per_char)
    except KeyboardInterrupt:
        interrupted = True  # Ctrl-C: the caller still exports what was learned so far
    finally:
        writer.close()
    return TrainResult(
        steps_completed=steps_completed,
        train_bits_per_char=sum(last_losses) / len(last_losses) / LN2 if last_losses else float("nan"),
        validation_bits_per_char=validation_bits_per_char,
        chars_per_sec=progress.chars_per_sec,
        interrupted=interrupted,
    )


def _format_duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"
