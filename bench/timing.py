"""Timing of the real training step, shared by the bench scripts that measure it (accelerator_check.py, train.py)."""

import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import tensorflow as tf

import distribute
from config import Config
from models.char_lstm import build_model
from optimization import make_optimizer
from training import make_train_steps


def make_random_batches(vocab_size: int, *, batch_size: int, seq_len: int, seed: int = 0) -> tf.data.Dataset:
    """One batch of random ids, repeated: (inputs, targets) int32 [batch_size, seq_len], the targets one id ahead."""
    ids = np.random.default_rng(seed).integers(0, vocab_size, size=(batch_size, seq_len + 1), dtype=np.int32)
    return tf.data.Dataset.from_tensors((ids[:, :-1], ids[:, 1:])).repeat()


class TrainingRun(NamedTuple):
    chars_per_sec: float  # input characters of the global batch per second, all replicas together
    policy: str  # the Keras dtype policy use_precision chose: float32, mixed_float16 or mixed_bfloat16
    op_types: set[str] | None  # every op type in the compiled step's graph; None when it cannot be read


class TimedSteps(NamedTuple):
    time_steps: Callable[[float], float]  # seconds -> characters per second of the steps run in that time (at least 2)
    policy: str  # the Keras dtype policy the model was built under
    op_types: Callable[[], set[str] | None]  # every op type in the compiled step's graph; None when it cannot be read


def make_timed_steps(
    cfg: Config, strategy: tf.distribute.Strategy, vocab_size: int, *, precision: str, fast_cpu_lstm: bool | None = None
) -> TimedSteps:
    """The real compiled training step at cfg's sizes and --precision, traced and compiled by one warm-up step, to time.

    The LSTM layer is the one training picks for `strategy` (distribute.trains_on_cpu) unless fast_cpu_lstm says.
    Each step's loss is read back, as training.train does, so the timing covers whole steps. The model keeps
    its dtype policy; the global policy is back as it was on return.
    """
    if fast_cpu_lstm is None:
        fast_cpu_lstm = distribute.trains_on_cpu(strategy)
    with distribute.use_precision(precision, strategy) as policy, strategy.scope():
        model = build_model(cfg.model, vocab_size, fast_cpu_lstm=fast_cpu_lstm)
        optimizer = make_optimizer(cfg, model, total_steps=1_000_000, num_replicas=strategy.num_replicas_in_sync)
    batches = make_random_batches(vocab_size, batch_size=cfg.batch_size, seq_len=cfg.seq_len)
    batches = iter(strategy.experimental_distribute_dataset(batches))
    train_steps = make_train_steps(model, optimizer, strategy, global_batch_size=cfg.batch_size)
    train_steps(batches, 1)  # warm-up: traces and compiles the step (and autotunes cuDNN on a GPU)

    def time_steps(seconds: float) -> float:
        steps, start = 0, time.perf_counter()
        while steps < 2 or time.perf_counter() - start < seconds:
            train_steps(batches, 1)  # one step per call, the host waiting for each: what training does on CPUs and GPUs
            steps += 1
        return steps * cfg.batch_size * cfg.seq_len / (time.perf_counter() - start)

    def op_types():
        return graph_op_types(train_steps.compiled.get_concrete_function(batches, tf.constant(1)).graph)

    return TimedSteps(time_steps, policy, op_types)


def measure_training(
    cfg: Config,
    strategy: tf.distribute.Strategy,
    vocab_size: int,
    *,
    precision: str,
    seconds: float,
    fast_cpu_lstm: bool | None = None,
) -> TrainingRun:
    """make_timed_steps, timed once for `seconds`."""
    timed = make_timed_steps(cfg, strategy, vocab_size, precision=precision, fast_cpu_lstm=fast_cpu_lstm)
    return TrainingRun(timed.time_steps(seconds), timed.policy, timed.op_types())


def graph_op_types(graph: tf.Graph) -> set[str]:
    """Every op type in a traced graph, including the functions it calls (while-loop bodies, gradients)."""
    graph_def = graph.as_graph_def()
    functions = graph_def.library.function
    return {node.op for node in graph_def.node} | {node.op for function in functions for node in function.node_def}
