"""What a training run shows while it goes: progress lines on the terminal and the same numbers in TensorBoard."""

import math
import sys
import time
from collections.abc import Callable

import tensorflow as tf

LN2 = math.log(2.0)  # nats per bit: losses are in nats, people read bits per character


class ProgressReport:
    """Prints 'step 120/3000  loss 2.31  3.33 bits/char  41,203 chars/s  ETA 4m12s'.

    On a terminal one status line updates in place; every `log_every` steps a line is kept
    (the only output when stdout is a file or a CI log) and the same numbers go to TensorBoard.
    A total of None is one not planned yet (--train_minutes): 'step 20/?', and no ETA.
    """

    def __init__(self, *, total_steps: int | None, chars_per_step: int, log_every: int, writer, first_step: int = 0):
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

    def update(self, step: int, loss: float, *, learning_rate: Callable[[], float]) -> None:
        """Called after `step` steps (1-based) with that step's loss in nats."""
        self.window_losses.append(loss)
        now = time.monotonic()
        elapsed = now - self.window_start_time
        if elapsed > 0:
            self.chars_per_sec = (step - self.window_start_step) * self.chars_per_step / elapsed
        if step % self.log_every == 0 or step == self.total_steps:
            self._finish_line(self._status(step, self.mean_loss))
            with self.writer.as_default(step=step):
                tf.summary.scalar("train/loss", self.mean_loss)
                tf.summary.scalar("train/bits_per_char", self.mean_loss / LN2)
                tf.summary.scalar("train/chars_per_sec", self.chars_per_sec)
                tf.summary.scalar("train/learning_rate", learning_rate())  # asked for here only: it costs an eager op
            self.window_losses = []
            self.window_start_time, self.window_start_step = now, step
        elif self.interactive and now - self.last_redraw > 0.25:
            self.last_redraw = now
            sys.stdout.write("\r" + self._status(step, sum(self.window_losses) / len(self.window_losses)))
            sys.stdout.flush()

    def plan(self, total_steps: int, text: str) -> None:
        """The total steps, planned while training runs (--train_minutes), and a line that says how."""
        self.total_steps = total_steps
        self._finish_line(text)

    def validation(self, step: int, bits_per_char: float, *, improved: bool) -> None:
        best = "  (best so far)" if improved else ""
        self._finish_line(f"step {self._of_total(step)}  validation {bits_per_char:.3f} bits/char{best}")
        with self.writer.as_default(step=step):
            tf.summary.scalar("validation/bits_per_char", bits_per_char)
            tf.summary.scalar("validation/loss", bits_per_char * LN2)

    def sample(self, step: int, text: str) -> None:
        """Shows what the model writes now: the quickest way to judge a character model."""
        self._finish_line(f"--- sample after step {step:,} ---\n{text}\n---")
        with self.writer.as_default(step=step):
            # TensorBoard renders text summaries as Markdown; a fenced block keeps line breaks and spacing.
            tf.summary.text("samples", "```\n" + text.replace("```", "'''") + "\n```")

    def note(self, text: str) -> None:
        self._finish_line(text)

    @property
    def mean_loss(self) -> float:
        return sum(self.window_losses) / len(self.window_losses) if self.window_losses else float("nan")

    def _status(self, step: int, loss: float) -> str:
        status = f"step {self._of_total(step)}  loss {loss:.3f}  {loss / LN2:.3f} bits/char  {self.chars_per_sec:,.0f} chars/s"
        if self.total_steps is None:
            return status
        remaining = (self.total_steps - step) * self.chars_per_step / self.chars_per_sec if self.chars_per_sec else 0
        return f"{status}  ETA {_format_duration(remaining)}"

    def _of_total(self, step: int) -> str:
        return f"{step:,}/{'?' if self.total_steps is None else f'{self.total_steps:,}'}"

    def _finish_line(self, text: str) -> None:
        prefix = "\r\033[K" if self.interactive else ""
        print(prefix + text, flush=True)
        self.writer.flush()


def _format_duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"
