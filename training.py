"""Training: run(cfg), all that train.py does (data, model, resume, train, export), and the training loop it calls:
compiled (and distributed) steps, validation, early stopping, checkpoints, a diverging run stopped. Progress lines and
TensorBoard: progress.py; the optimizer: optimization.py; scoring in bits per character: evaluation.py."""

import collections
import contextlib
import dataclasses
import math
import pathlib
import re
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

import checkpoints as checkpoints_lib
import distribute
import export
import workdirs
from checkpoints import TrainingCheckpoints
from config import Config
from errors import UserError
from evaluation import make_evaluate
from files import discard_stdout
from models import compiled_lstm, fast_lstm
from models.carried_state import CarriedState
from models.char_lstm import build_model
from models.sampling import generate_text
from optimization import make_optimizer
from pipeline.datasets import Datasets, distribute_by_rows, make_datasets
from pipeline.vocab import Vocabulary
from progress import LN2, ProgressReport
from step_plan import TIMED_STEPS, StepPlanner

# A fresh model guesses every id alike, which costs ln(vocab_size) nats per character; training goes down from there.
# Measured (80-150 steps from a fresh start on tinyshakespeare's 66 ids and on texts of 4 and 6,002 ids, models of
# 8/16 to 256/512 embedding/LSTM units, batches of 32 x 64): at --learning_rate 0.03 or less, and up to 0.3 after 50
# warm-up steps, the mean loss of any 20 steps in a row stayed below 1.5 times ln(vocab_size), though single early
# steps reached 5.3 times it. Without warm-up, models of 64 units or more reached 20-step means of 4.7 to 8.2 times
# it at 0.1 and 0.3 (for 20 to 50 steps, before falling back), and of 22 to 58 times at 1.0, where they stayed far
# above it. Three times, averaged over 20 steps, separates the two with room on both sides (a lone spike would have
# to pass about 40 times), and a run that diverges from the start hears so at step 20, before its first progress line.
DIVERGENCE_WINDOW = 20  # steps
DIVERGENCE_FACTOR = 3.0  # times the loss of a uniform guess


@dataclasses.dataclass
class TrainResult:
    steps_completed: int  # counted from the first run, resumed runs included
    train_bits_per_char: float  # mean over the last log_every steps of this run
    validation_bits_per_char: float | None  # of the weights kept (the best); None without validation text
    best_step: int | None  # the step whose weights scored best on validation, and are in the model now
    chars_per_sec: float
    interrupted: bool  # stopped early by Ctrl-C
    stopped_early: bool  # --patience ran out
    export_dir: pathlib.Path | None = None  # where run() wrote the export; None from train(), and on non-chief workers


def run(cfg: Config) -> TrainResult:
    """All that train.py does with the Config of its flags: data, model, resume from checkpoints, train, export.

        result = training.run(Config(books=(11,), steps=500, export_dir="exports/alice"))
        print(api.load(result.export_dir).generate("Alice ", length=200))

    It prints what train.py prints. Checkpoints and logs go beside the export unless `cfg` names them
    (<export_dir>.checkpoints, <export_dir>.logs), and each directory is locked while this run writes it.
    Ctrl-C (or the reader of the progress lines going away) stops training with a checkpoint, and an
    export if any step was trained, then raises KeyboardInterrupt again; rerunning resumes.
    """
    cfg = _with_default_paths(cfg)
    _check_directories_apart(cfg)
    strategy = distribute.make_strategy(cfg.strategy)
    _check_batch_splits_evenly(cfg, strategy)
    is_chief = distribute.is_chief(strategy)
    with contextlib.ExitStack() as held:
        precision = held.enter_context(distribute.use_precision(cfg.precision, strategy))
        if is_chief:  # the one writer of the export and the checkpoints; the other workers only read
            held.enter_context(workdirs.exclusive_use(cfg.export_dir, flag="--export_dir"))
            held.enter_context(workdirs.exclusive_use(cfg.checkpoint_dir, flag="--checkpoint_dir"))
        export.check_can_write(cfg.export_dir)
        checkpoints_lib.check_can_use(cfg.checkpoint_dir)
        with _stop_when_a_worker_is_lost(cfg, strategy):
            return _train_and_export(cfg, strategy, is_chief=is_chief, precision=precision)


def train(
    cfg: Config,
    *,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    data: Datasets,
    strategy: tf.distribute.Strategy,
    checkpoints: TrainingCheckpoints,
    total_steps: tf.Variable,
    write_logs: bool = True,
    sample_text: Callable[[], str] | None = None,
) -> TrainResult:
    """Trains from the step `checkpoints` holds up to `total_steps`, validating after every epoch and at the end.

    `total_steps` is the variable the learning-rate schedule reads. While it is 0, --train_minutes plans it
    from the speed of the first steps (step_plan.py), every worker taking the chief's plan, which the
    checkpoints keep for a resumed run.

    Checkpoints are saved every --checkpoint_every steps, after every epoch, at the end and on
    Ctrl-C (which ends training early with `interrupted` set, so the caller can still export).
    When validation text exists the model ends up holding the weights that scored best on it.
    A loss that turns NaN or infinite, or diverges (has_diverged), stops training with a UserError; no checkpoint
    is saved while a recent loss is that high, so the latest one is from before the climb.
    """
    first_step = int(checkpoints.step.numpy())
    total = int(total_steps.numpy()) or None
    planner = None if total else StepPlanner(cfg.train_minutes, first_step=first_step, warmup_steps=cfg.warmup_steps)
    chars_per_step = cfg.batch_size * cfg.seq_len
    batches = iter(distribute_by_rows(data.train, strategy, first_step=first_step))  # resumes the same stream
    streams = bool(cfg.stream_windows)
    train_steps = make_train_steps(model, optimizer, strategy, global_batch_size=cfg.batch_size, streams=streams)
    steps_per_call = cfg.steps_per_call or distribute.auto_steps_per_call(strategy, log_every=cfg.log_every)
    evaluate = make_evaluate(model, strategy, stream_rows=cfg.batch_size if streams else 0)
    writer = tf.summary.create_file_writer(cfg.logdir) if write_logs else tf.summary.create_noop_writer()
    progress = ProgressReport(
        total_steps=total, chars_per_step=chars_per_step, log_every=cfg.log_every, writer=writer, first_step=first_step
    )
    last_losses = collections.deque(maxlen=cfg.log_every)
    recent_losses = collections.deque(maxlen=DIVERGENCE_WINDOW)
    highest_loss_to_save = DIVERGENCE_FACTOR * math.log(data.vocabulary.size)  # nats
    saved_step = first_step  # the latest checkpoint, taken while no recent loss was above highest_loss_to_save
    save_due = interrupted = stopped_early = False
    try:
        step = first_step
        # Several steps per compiled call keep a TPU busy; each call ends where the host has work to do
        # (a progress line, validation, a checkpoint), so the weights are those of `step` whenever it looks.
        host_work_every = (cfg.log_every, cfg.checkpoint_every, data.steps_per_epoch)
        while total is None or step < total:
            end = planner.stop_at(step) if total is None else total
            num_steps = _steps_in_next_call(step, steps_per_call, host_work_every=host_work_every, total_steps=end)
            for loss in train_steps(batches, num_steps):
                step += 1
                loss = float(loss)
                recent_losses.append(loss)
                if not math.isfinite(loss):
                    raise _divergence_error(cfg, step, f"the loss became {loss}", saved_step=saved_step)
                if has_diverged(recent_losses, vocab_size=data.vocabulary.size):
                    raise _divergence_error(
                        cfg,
                        step,
                        f"the loss averaged {sum(recent_losses) / len(recent_losses) / LN2:.1f} bits/char over the last "
                        f"{len(recent_losses)} steps, more than {DIVERGENCE_FACTOR:g} times the "
                        f"{math.log2(data.vocabulary.size):.2f} bits/char of a uniform guess over its {data.vocabulary.size} ids",
                        saved_step=saved_step,
                    )
                checkpoints.step.assign(step)
                last_losses.append(loss)
                progress.update(step, loss, learning_rate=lambda: _current_learning_rate(optimizer))
            if total is None and (planned := planner.observe(step)) is not None:
                total = distribute.values_of_workers(strategy, planned)[0]  # every worker follows the chief's plan
                total_steps.assign(total)
                checkpoints.record_plan(checkpoints_lib.Plan(total, cfg.train_minutes))
                progress.plan(total, _describe_plan(cfg, planner, step, total))
            end_of_epoch = step % data.steps_per_epoch == 0
            if data.validation is not None and (end_of_epoch or step == total):
                bits_per_char, _ = evaluate(data.validation)
                improved = checkpoints.record_validation(bits_per_char)
                progress.validation(step, bits_per_char, improved=improved)
                if sample_text is not None:
                    progress.sample(step, sample_text())
                stopped_early = 0 < cfg.patience <= int(checkpoints.epochs_without_improvement.numpy())
            save_due = save_due or step % cfg.checkpoint_every == 0 or end_of_epoch
            # A checkpoint due while the loss spikes waits for DIVERGENCE_WINDOW steps without a spike: saved now,
            # it could replace the last good one with weights that are diverging. The last step saves what the
            # export will hold. Every worker of a multi-worker run sees the same losses and weights, so all of
            # them save (a collective operation) or none.
            if step == total or stopped_early or (save_due and max(recent_losses) <= highest_loss_to_save):
                if not _all_finite(model.trainable_weights):
                    raise _divergence_error(cfg, step, "the weights became infinite or NaN", saved_step=saved_step)
                checkpoints.save()
                saved_step, save_due = step, False
            if stopped_early:
                progress.note(f"stopping early: no better validation score in the last {cfg.patience} epoch(s) (--patience)")
                break
    except (KeyboardInterrupt, BrokenPipeError) as stop:
        if isinstance(stop, BrokenPipeError):  # the reader of the progress lines has gone (train.py | head)
            discard_stdout()  # so that the checkpoint, the export and the lines after them still happen
        if distribute.num_workers(strategy) > 1:
            # Saving takes every worker (a collective operation) and the others are still training, so none can
            # be saved now: this worker leaves, and the others stop when they find it gone (_stop_when_a_worker_is_lost).
            resume = f"resume from the checkpoint of step {saved_step:,}" if saved_step else "start again"
            print(f"interrupted at step {int(checkpoints.step.numpy()):,}: every worker of this run stops; rerun every worker to {resume}")
            raise KeyboardInterrupt from None
        interrupted = True  # keep what was learned so far, and make it resumable
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


def make_train_steps(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    strategy: tf.distribute.Strategy,
    *,
    global_batch_size: int,
    streams: bool = False,
):
    """A function: (an iterator of (inputs, targets) batches, n) -> the mean cross-entropy in nats of each of n steps,
    float32 [n], trained in one compiled call (the host waits for the last step only).

    With streams, batches are (inputs, targets, carried) and each row starts from the LSTM state its row of the
    last batch left (models/carried_state.py); the gradient stops at the window's start.

    Each replica sums its share of the loss over the global batch's characters, so the replicas'
    gradients add up to the gradient of the global batch's mean loss. Loss-scaled (float16) on several
    replicas, a step whose gradients overflowed on any replica is skipped on all of them (_spread_overflow).
    """
    # Decided once, in Python: one device, float32 and bfloat16 steps trace exactly as before.
    spread_overflow = isinstance(optimizer, keras.optimizers.LossScaleOptimizer) and strategy.num_replicas_in_sync > 1

    if streams:
        with strategy.scope():
            carried_state = CarriedState(model, rows=global_batch_size // strategy.num_replicas_in_sync)

    def replica_step(inputs, targets, carried=None):
        with tf.GradientTape() as tape:
            if carried is None:
                logits = model(inputs, training=True)
            else:
                logits = carried_state.logits(inputs, carried, training=True)
            logits = tf.cast(logits, tf.float32)  # [batch, seq_len, vocab]
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
            loss = tf.reduce_sum(losses) / tf.cast(global_batch_size * tf.shape(targets)[1], tf.float32)
            scaled_loss = optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, model.trainable_variables)
        if spread_overflow:
            gradients = _spread_overflow(gradients)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    @tf.function
    def compiled_steps(iterator, num_steps):
        # The loop TensorFlow's TPU guide gives for several steps per call: a tf.range loop around strategy.run.
        losses = tf.TensorArray(tf.float32, size=num_steps)
        for index in tf.range(num_steps):
            per_replica_loss = strategy.run(replica_step, args=next(iterator))
            losses = losses.write(index, strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica_loss, axis=None))
        return losses.stack()

    def train_steps(iterator, num_steps: int) -> np.ndarray:
        return compiled_steps(iterator, tf.constant(num_steps, tf.int32)).numpy()  # a tensor: one trace for every n

    train_steps.compiled = compiled_steps  # the tf.function, whose graph bench/accelerator_check.py reads
    return train_steps


def _steps_in_next_call(step: int, steps_per_call: int, *, host_work_every: Sequence[int], total_steps: int) -> int:
    """How many steps the next compiled call trains after `step`: `steps_per_call`, or fewer to stop where the host
    has work (every so many steps: progress lines, checkpoints, validation) or training ends.

        _steps_in_next_call(0, 100, host_work_every=(50, 40), total_steps=1000)  # 40
        _steps_in_next_call(40, 100, host_work_every=(50, 40), total_steps=1000)  # 10
    """
    until_host_work = min(every - step % every for every in host_work_every)
    return min(steps_per_call, until_host_work, total_steps - step)


def _spread_overflow(gradients: list) -> list:
    """One replica's gradients, made not finite when any replica's are not; called in a replica context.

    LossScaleOptimizer skips a step whose scaled float16 gradients overflowed, and halves the loss scale. But it
    checks the gradients before the replicas' are summed, and under a MirroredStrategy or MultiWorkerMirroredStrategy
    only the first replica's (keras-team/keras#18666): an overflow on another replica went into the sum and
    turned every replica's weights to NaN. With the number of replicas that overflowed all-reduced first, every
    replica sees the overflow, and the optimizer skips the step on all of them.
    One gradient is enough to spoil, as the optimizer checks them all: the first dense one (the embedding's is
    sparse, tf.IndexedSlices).
    """
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(_values(g))) for g in gradients if g is not None])
    overflowed = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(~finite, tf.float32))
    first_dense = next(i for i, g in enumerate(gradients) if isinstance(g, tf.Tensor))
    spoil = tf.where(overflowed > 0, float("nan"), 0.0)  # a scalar: NaN when some replica overflowed, else 0
    gradients = list(gradients)
    gradients[first_dense] += tf.cast(spoil, gradients[first_dense].dtype)
    return gradients


def _values(gradient):
    return gradient.values if isinstance(gradient, tf.IndexedSlices) else gradient


def has_diverged(recent_losses: Sequence[float], *, vocab_size: int) -> bool:
    """True when the last DIVERGENCE_WINDOW losses (nats per character) average over DIVERGENCE_FACTOR times the loss of
    a uniform guess over `vocab_size` ids, ln(vocab_size). Fewer losses than that decide nothing.

        has_diverged([4.2] * 19 + [90.0], vocab_size=66)  # False: one spike (the mean 8.5 is below 3 x 4.19)
        has_diverged([4.2] + [14.0] * 19, vocab_size=66)  # True: the mean 13.5 is above 12.57
    """
    window = list(recent_losses)[-DIVERGENCE_WINDOW:]
    return len(window) == DIVERGENCE_WINDOW and sum(window) / DIVERGENCE_WINDOW > DIVERGENCE_FACTOR * math.log(vocab_size)


def _train_and_export(cfg: Config, strategy: tf.distribute.Strategy, *, is_chief: bool, precision: str) -> TrainResult:
    keras.utils.set_random_seed(cfg.seed)  # first: tf.data's seeded shuffles depend on TensorFlow's global seed too
    data = make_datasets(cfg)
    print(
        f"corpus: {data.num_books} book(s), {data.train_chars:,} training and {data.validation_chars:,} validation "
        f"characters, {data.vocabulary.size} ids in the vocabulary; prepared data in {data.prepared_dir}"
    )
    if distribute.trains_on_cpu(strategy):
        # The compiled LSTM is built here the first time (up to a minute), rather than unannounced in the first step.
        matmul_dtype = fast_lstm.products_dtype(keras.mixed_precision.Policy(precision).compute_dtype)
        reason = compiled_lstm.why_not(cfg.rnn_units, matmul_dtype)
        compiled = f"compiled (models/lstm_kernel.cc), products in {matmul_dtype.name}"
        print(f"LSTM loops: {compiled}" if reason is None else f"LSTM loops: TensorFlow's ({reason})")
    with strategy.scope():
        model = build_model(cfg.model, data.vocabulary.size, fast_cpu_lstm=distribute.trains_on_cpu(strategy))
        # The schedule reads the total from this variable: --train_minutes plans it once training has started.
        total_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="total_steps")
        optimizer = make_optimizer(cfg, model, total_steps=total_steps, num_replicas=strategy.num_replicas_in_sync)
        checkpoints = TrainingCheckpoints(
            cfg.checkpoint_dir, model=model, optimizer=optimizer, keep=cfg.keep_checkpoints, is_chief=is_chief
        )
    first_step = checkpoints.restore_or_start(cfg, data.vocabulary)
    _check_workers_resume_together(cfg, strategy, first_step)
    plan = checkpoints.plan if cfg.train_minutes else None  # a resumed run keeps its plan
    if cfg.train_minutes:
        total = plan.steps if plan else 0  # 0: planned once training runs
    else:
        total = cfg.steps or cfg.epochs * data.steps_per_epoch
    total = distribute.values_of_workers(strategy, total)[0]  # the chief's, should the workers see different run files
    total_steps.assign(total)
    print(f"training {_describe_length(cfg, total, data.steps_per_epoch, plan)} on {distribute.describe(strategy)}, {precision}")
    if total and first_step > total:
        raise UserError(
            f"the checkpoints in {cfg.checkpoint_dir} are at step {first_step:,}, past the {total:,} steps asked for; "
            f"ask for more ({_more_steps(cfg, first_step)}), or pass --noresume to start over"
        )
    if total and first_step == total:
        print(
            f"training is already complete: the checkpoints in {cfg.checkpoint_dir} are at step {first_step:,} of "
            f"{total:,}; exporting them again (to train on, ask for more: {_more_steps(cfg, first_step)})"
        )
    elif first_step:
        print(f"resuming from the checkpoint of step {first_step:,} in {cfg.checkpoint_dir}")
    result = train(
        cfg,
        model=model,
        optimizer=optimizer,
        data=data,
        strategy=strategy,
        checkpoints=checkpoints,
        total_steps=total_steps,
        write_logs=is_chief,
        sample_text=_make_sampler(cfg, model, data.vocabulary) if cfg.sample_length else None,
    )
    if result.steps_completed == first_step and result.interrupted:
        raise KeyboardInterrupt
    summary = f"{result.steps_completed:,} steps"
    if result.steps_completed > first_step:  # no steps trained by this run: no training loss to speak of
        summary += f", train {result.train_bits_per_char:.3f} bits/char"
    if result.best_step is not None:
        summary += f", best validation {result.validation_bits_per_char:.3f} bits/char (step {result.best_step:,})"
    print(f"{'interrupted' if result.interrupted else 'done'}: {summary}")
    if is_chief:  # in multi-worker training every worker holds the same weights; one copy is enough
        directory = export.write_export(
            cfg.export_dir,
            model=model,
            config=cfg,
            vocabulary=data.vocabulary,
            steps_completed=result.steps_completed,
            validation_bits_per_char=result.validation_bits_per_char,
        )
        print(f"exported to {directory}; generate with: python generate.py --export_dir={directory}")
        result = dataclasses.replace(result, export_dir=directory)
    if result.interrupted:
        print(f"rerun the same command to continue from step {result.steps_completed:,}")
        raise KeyboardInterrupt
    return result


def _describe_length(cfg: Config, total: int, steps_per_epoch: int, plan: checkpoints_lib.Plan | None) -> str:
    """'6,000 steps of 32 x 64 characters (3.75 epochs of 1,599 steps)', or how --train_minutes will decide."""
    batches = f"of {cfg.batch_size} x {cfg.seq_len} characters"
    if not total:
        return f"for about {cfg.train_minutes:g} minutes (--train_minutes), steps {batches} (epochs of {steps_per_epoch:,} steps)"
    planned = ""
    if plan:
        planned = f", planned by --train_minutes={plan.train_minutes:g} when this run started"
        if plan.train_minutes != cfg.train_minutes:
            planned += f"; a resumed run keeps its plan, so --train_minutes={cfg.train_minutes:g} changes nothing: --train_minutes=0 --steps=N does"
    return f"{total:,} steps {batches} ({total / steps_per_epoch:.2f} epochs of {steps_per_epoch:,} steps{planned})"


def _describe_plan(cfg: Config, planner: StepPlanner, step: int, total: int) -> str:
    minutes = f"--train_minutes={cfg.train_minutes:g}"
    if total == step:
        return (
            f"{minutes}: the time was spent by step {step:,}, where the plan was due (the end of --warmup_steps="
            f"{cfg.warmup_steps:,}, and at least {TIMED_STEPS} timed steps); training stops here"
        )
    timed_from = planner.timed_from[0]
    return f"{minutes}: {total:,} steps planned, at the {1 / planner.seconds_per_step:.1f} steps/s of steps {timed_from + 1:,}-{step:,}"


def _more_steps(cfg: Config, first_step: int) -> str:
    if cfg.train_minutes:
        return f"--train_minutes=0 --steps={first_step + 1000}"
    return f"--steps={first_step + 1000}"


def _with_default_paths(cfg: Config) -> Config:
    """Logs and checkpoints live beside the export unless the flags say otherwise."""
    return dataclasses.replace(
        cfg,
        logdir=cfg.logdir or f"{cfg.export_dir}.logs",
        checkpoint_dir=cfg.checkpoint_dir or f"{cfg.export_dir}.checkpoints",
    )


def _check_directories_apart(cfg: Config) -> None:
    """Checkpoints or logs inside the export directory would be deleted with it when the export is swapped in."""
    for flag, path, default in [
        ("--checkpoint_dir", cfg.checkpoint_dir, f"{cfg.export_dir}.checkpoints"),
        ("--logdir", cfg.logdir, f"{cfg.export_dir}.logs"),
    ]:
        if workdirs.is_inside(path, cfg.export_dir):
            raise UserError(
                f"{flag}={path} is inside --export_dir={cfg.export_dir}, which each export replaces whole; "
                f"choose a {flag} outside it, or leave it out for the default beside it, {default}"
            )


# What a collective operation raises when another worker has stopped (its heartbeats cease) or cannot be reached.
_WORKER_LOST_ERRORS = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError, tf.errors.CancelledError)


@contextlib.contextmanager
def _stop_when_a_worker_is_lost(cfg: Config, strategy: tf.distribute.Strategy):
    """In multi-worker training, another worker gone (Ctrl-C, kill, a crash) ends this one with a clear message."""
    try:
        yield
    except _WORKER_LOST_ERRORS as error:
        if distribute.num_workers(strategy) == 1:
            raise
        lost = sorted(set(re.findall(r"/job:\w+/replica:\d+/task:\d+", str(error))))
        raise UserError(
            f"another worker of this multi-worker run stopped or cannot be reached ({', '.join(lost) or 'TensorFlow does not say which'}), "
            f"so this one stops too; rerun every worker: training resumes from the last checkpoint in "
            f"--checkpoint_dir={cfg.checkpoint_dir}"
        ) from None


def _check_workers_resume_together(cfg: Config, strategy: tf.distribute.Strategy, first_step: int) -> None:
    """Workers that restored different steps would wait for one another's collectives forever; say why instead."""
    steps = distribute.values_of_workers(strategy, first_step)
    if len(set(steps)) == 1:
        return
    each = ", ".join(f"worker {index}: {'a fresh start' if step == 0 else f'step {step:,}'}" for index, step in enumerate(steps))
    raise UserError(
        f"the {len(steps)} workers would resume from different checkpoints ({each}): each worker restores from "
        f"--checkpoint_dir={cfg.checkpoint_dir} as it sees it, and only the chief writes there; give every worker "
        "the same shared directory (a network filesystem mounted at the same path on every machine), or copy the "
        "chief's checkpoints to the others, then rerun every worker"
    )


def _check_batch_splits_evenly(cfg: Config, strategy: tf.distribute.Strategy) -> None:
    """Every replica takes an equal share of each batch (a TPU compiles one batch shape), so --batch_size must divide."""
    replicas = strategy.num_replicas_in_sync
    if cfg.batch_size % replicas == 0:
        return
    below = cfg.batch_size // replicas * replicas
    nearest = " or ".join(f"--batch_size={size}" for size in (below, below + replicas) if size > 0)
    raise UserError(
        f"--batch_size={cfg.batch_size} does not split evenly among the {replicas} replicas of --strategy={cfg.strategy} "
        f"({distribute.describe(strategy)}), which each take an equal share of every batch; use a multiple of "
        f"{replicas}: {nearest}"
    )


def _make_sampler(cfg: Config, model: keras.Model, vocabulary: Vocabulary) -> Callable[[], str]:
    """A function that returns --sample_length characters written by the model's current weights."""
    # A new line is the most neutral prompt; any corpus without one starts from its first character.
    seed_text = "\n" if not vocabulary.unknown_chars("\n") else vocabulary.chars[0]

    def sample_text() -> str:
        texts = generate_text(model, vocabulary, seed_text=seed_text, length=cfg.sample_length, temperature=0.8, seed=cfg.seed)
        return "".join(texts)

    return sample_text


def _divergence_error(cfg: Config, step: int, what: str, *, saved_step: int) -> UserError:
    # Measured: a smaller --clipnorm does not help (Adam scales every step to about the learning rate anyway),
    # while 50 warm-up steps let 0.1 and 0.3 train models that diverged at those rates from a cold start.
    rerun = "then rerun"
    if saved_step:
        rerun += f": training resumes from the checkpoint of step {saved_step:,}, saved before the loss climbed"
    return UserError(
        f"training diverged at step {step:,}: {what}; lower --learning_rate (now {cfg.learning_rate:g}) or raise "
        f"--warmup_steps (now {cfg.warmup_steps:,}; e.g. 100), {rerun}"
    )


def _all_finite(weights) -> bool:
    return all(bool(tf.reduce_all(tf.math.is_finite(weight))) for weight in weights)


def _current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    return float(np.asarray(optimizer.learning_rate))
