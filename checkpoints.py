"""Training checkpoints: save often, resume after a crash or kill -9, refuse to resume into a different run.

    <checkpoint_dir>/charbook.json      the marker (workdirs.py): charbook owns this directory
    <checkpoint_dir>/run.json           the settings and vocabulary of the run the checkpoints belong to, and the
                                        total steps --train_minutes planned for it
    <checkpoint_dir>/ckpt-<step>.*      model, optimizer, step and early-stopping state (the last few kept)
    <checkpoint_dir>/best/ckpt-<step>.* the weights with the best validation score so far

TensorFlow writes each checkpoint under a temporary name and only then points the `checkpoint`
index file at it (itself replaced atomically), so a kill at any moment leaves the previous one
usable. Where the data stream was needs no saving: the training batches are a fixed function of
--seed, so resuming at step n skips the first n batches (cheap next to training on them).
"""

import contextlib
import json
import math
import pathlib
import re
import shutil
import tempfile
from typing import NamedTuple

import keras
import tensorflow as tf

import workdirs
from config import Config, fields_in_groups, names_in_groups
from errors import UserError, os_error_reason
from files import write_file_atomically
from pipeline.vocab import Vocabulary

RUN_FILE = "run.json"
FORMAT_VERSION = 1
# Everything this module and TensorFlow's checkpointing write, including what a kill leaves mid-save
# (TensorFlow's "ckpt-5_temp/" directories and "checkpoint.tmp<hex>" index files): only these are ever deleted.
CHECKPOINT_FILES = re.compile(
    r"(best/)?(checkpoint(\.tmp[0-9a-f]+)?|ckpt-\d+(\.index|\.data-\d+-of-\d+|_temp(/.*)?))|best|run\.json|charbook\.json"
)
# Settings that say where things are, not what is trained: a resumed run may change them freely.
SETTINGS_FREE_ON_RESUME = names_in_groups("data.fetch")


class Plan(NamedTuple):
    steps: int  # the run's total steps
    train_minutes: float  # the --train_minutes they were planned for


class TrainingCheckpoints:
    """The checkpoints of one training run: its step, model, optimizer and best validation score."""

    def __init__(
        self, directory: str, *, model: keras.Model, optimizer: keras.optimizers.Optimizer, keep: int, is_chief: bool = True
    ):
        self.directory = pathlib.Path(directory)
        self.is_chief = is_chief
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.best_validation = tf.Variable(math.inf, dtype=tf.float32, trainable=False, name="best_validation")
        self.epochs_without_improvement = tf.Variable(0, dtype=tf.int64, trainable=False, name="epochs_without_improvement")
        self._state = tf.train.Checkpoint(
            model=model,
            optimizer=optimizer,
            step=self.step,
            best_validation=self.best_validation,
            epochs_without_improvement=self.epochs_without_improvement,
        )
        self._best = tf.train.Checkpoint(model=model)
        # In multi-worker training every worker takes part in saving; only the chief's copy is kept.
        self._write_to = self.directory if is_chief else pathlib.Path(tempfile.mkdtemp(prefix="charbook-worker-checkpoints-"))
        self._keep = keep
        self._open_managers()

    def _open_managers(self) -> None:
        # A CheckpointManager lists the directory's checkpoints once, when it is made.
        self._latest = tf.train.CheckpointManager(self._state, self._write_to, max_to_keep=self._keep)
        self._best_weights = tf.train.CheckpointManager(self._best, self._write_to / "best", max_to_keep=1)

    def restore_or_start(self, cfg: Config, vocabulary: Vocabulary) -> int:
        """Restores the latest checkpoint of this run and returns its step, or returns 0 for a fresh start.

        With --noresume any earlier checkpoints are deleted. Raises UserError when the checkpoints
        belong to a run with other data, model or vocabulary settings.
        """
        run = {"config": cfg.to_json_dict(), "vocabulary": json.loads(vocabulary.to_json())}
        if self.is_chief:
            check_can_use(self.directory)
            if workdirs.read_marker(self.directory) is None:  # a new directory, or one from before the marker
                marker = workdirs.marker_json(workdirs.CHECKPOINTS, format_version=FORMAT_VERSION)
                write_file_atomically(self.directory / workdirs.MARKER_FILE, marker.encode())
            if not cfg.resume:
                _delete_checkpoints(self.directory)
                self._open_managers()  # the old ones would still skip saving steps the deleted checkpoints had
        if _saved_checkpoints(self.directory):
            _check_same_run(self.directory, run)
            return self._restore_latest()
        if self.is_chief:
            write_file_atomically(self.directory / RUN_FILE, json.dumps(run, indent=2, ensure_ascii=False).encode())
        return 0

    @property
    def plan(self) -> "Plan | None":
        """The total steps --train_minutes planned for this run (record_plan), None before a plan."""
        try:
            run = json.loads((self.directory / RUN_FILE).read_text(encoding="utf-8"))
            return Plan(int(run["planned_steps"]), float(run["planned_minutes"])) if "planned_steps" in run else None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # no run file: a fresh start, which has no plan (restore_or_start checks the file of a resumed run)

    def record_plan(self, plan: "Plan") -> None:
        """Keeps the planned total beside the run's settings, so that a resumed run keeps to the same schedule."""
        if not self.is_chief:
            return
        path = self.directory / RUN_FILE
        run = json.loads(path.read_text(encoding="utf-8"))
        run.update(planned_steps=plan.steps, planned_minutes=plan.train_minutes)
        with _clear_errors_on_write(self.directory):
            write_file_atomically(path, json.dumps(run, indent=2, ensure_ascii=False).encode())

    def save(self) -> None:
        """Saves the current state as checkpoint number `step` (a no-op if that one exists already)."""
        step = int(self.step.numpy())
        if self._latest.latest_checkpoint and self._latest.latest_checkpoint.endswith(f"-{step}"):
            return
        with _clear_errors_on_write(self.directory):
            self._latest.save(checkpoint_number=step)
        self._clean_up_worker_copy()

    def record_validation(self, bits_per_char: float) -> bool:
        """Notes an epoch's validation score; keeps the weights if they are the best so far. True if so."""
        if bits_per_char < float(self.best_validation.numpy()):
            self.best_validation.assign(bits_per_char)
            self.epochs_without_improvement.assign(0)
            with _clear_errors_on_write(self.directory):
                self._best_weights.save(checkpoint_number=int(self.step.numpy()))
            self._clean_up_worker_copy()
            return True
        self.epochs_without_improvement.assign_add(1)
        return False

    def restore_best_weights(self) -> int | None:
        """Loads the weights with the best validation score into the model; returns their step (None if none).

        Only the chief, which exports, needs them (other workers' copies are gone, the chief's may be in the making).
        """
        if not self.is_chief:
            return None
        path = tf.train.latest_checkpoint(self.directory / "best")
        if path is None:
            return None
        self._best.restore(path).expect_partial()
        return int(path.rsplit("-", 1)[1])

    def _restore_latest(self) -> int:
        # A checkpoint damaged on disk (a truncated copy, a bad sector) falls back to the one before it.
        for path in reversed(_saved_checkpoints(self.directory)):
            try:
                self._state.restore(path).assert_existing_objects_matched()
                return int(self.step.numpy())
            except Exception as error:  # noqa: BLE001  (TensorFlow raises all sorts for a damaged file)
                print(f"warning: checkpoint {path} cannot be read ({type(error).__name__}); trying an older one")
        raise UserError(
            f"every checkpoint in {self.directory} is damaged; delete that directory or pass --noresume to start over"
        )

    def _clean_up_worker_copy(self) -> None:
        if not self.is_chief:
            shutil.rmtree(self._latest.directory, ignore_errors=True)


@contextlib.contextmanager
def _clear_errors_on_write(directory: pathlib.Path):
    try:
        yield
    except (OSError, tf.errors.OpError) as error:
        message = os_error_reason(error) if isinstance(error, OSError) else error.message
        raise UserError(
            f"cannot write a checkpoint to {directory}: {message}; the previous checkpoint is unchanged. "
            "Free some disk space or choose another --checkpoint_dir, then rerun to resume from it"
        ) from None


def check_can_use(directory: str | pathlib.Path) -> None:
    """Refuses, before training starts, a --checkpoint_dir that holds anything but charbook's checkpoints.

    A new or empty directory is fine; so is one with the marker, or one of checkpoints written before the
    marker existed (a run.json of charbook's, and only checkpoint files).
    """
    directory = pathlib.Path(directory)
    if directory.is_file():
        raise UserError(f"--checkpoint_dir={directory} is a file, not a directory; choose another --checkpoint_dir")
    if not directory.is_dir():
        return
    marker = workdirs.read_marker(directory)
    workdirs.check_kind(
        marker,
        workdirs.CHECKPOINTS,
        place=f"--checkpoint_dir={directory}",
        advice="choose another --checkpoint_dir (by default it is <export_dir>.checkpoints)",
    )
    if marker is not None:
        return
    present = workdirs.tree(directory)
    others = [path for path in present if not CHECKPOINT_FILES.fullmatch(path)]
    if others or (present and not _is_run_file(directory / RUN_FILE)):
        raise UserError(
            f"--checkpoint_dir={directory} holds files that are not charbook's checkpoints "
            f"({workdirs.describe_paths(others or present)}, and no {workdirs.MARKER_FILE}); checkpoints need a directory "
            "of their own, whose old ones --noresume deletes: choose another --checkpoint_dir, e.g. a new one"
        )


def _is_run_file(path: pathlib.Path) -> bool:
    try:
        run = json.loads(path.read_bytes())
        return isinstance(run["config"], dict) and "vocabulary" in run
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _delete_checkpoints(directory: pathlib.Path) -> None:
    """--noresume: deletes this module's files (see the top) but the marker, and nothing else in the directory."""
    # Deepest first, so that a directory goes only once it is empty: a best/ holding a file of the user's stays.
    for path in sorted(directory.rglob("*"), key=lambda path: len(path.parts), reverse=True):
        relative = path.relative_to(directory).as_posix()
        if CHECKPOINT_FILES.fullmatch(relative) and relative != workdirs.MARKER_FILE:
            if path.is_dir():
                with contextlib.suppress(OSError):  # not empty: it holds the user's files
                    path.rmdir()
            else:
                path.unlink()


def _saved_checkpoints(directory: pathlib.Path) -> list[str]:
    """Paths of the checkpoints listed in `directory`'s index, oldest first (read afresh: other writers may have added one)."""
    state = tf.train.get_checkpoint_state(directory)
    return list(state.all_model_checkpoint_paths) if state else []


def _check_same_run(directory: pathlib.Path, current: dict) -> None:
    """Resuming with another vocabulary, model size or data would load weights into the wrong places."""
    try:
        saved = json.loads((directory / RUN_FILE).read_text(encoding="utf-8"))
        saved_config = Config.from_json_dict(saved["config"]).to_json_dict()  # settings added since: defaults
    except (OSError, ValueError, KeyError, TypeError, UserError) as error:
        raise UserError(
            f"{directory / RUN_FILE} is missing or damaged ({error}), so the checkpoints there cannot be checked; "
            "pass --noresume to start over or choose another --checkpoint_dir"
        ) from None
    compared = [f.name for f in fields_in_groups("data", "model", skip=SETTINGS_FREE_ON_RESUME)]
    differences = [
        f"--{name} was {_flag_value(saved_config[name])}, now {_flag_value(current['config'][name])}"
        for name in compared
        if saved_config[name] != current["config"][name]
    ]
    if saved.get("vocabulary") != current["vocabulary"]:
        differences.append("the vocabulary differs (the corpus changed)")
    if differences:
        raise UserError(
            f"the checkpoints in {directory} belong to a different run: {'; '.join(differences)}. "
            "Rerun with the same settings to resume, pass --noresume to start over, or choose another --checkpoint_dir"
        )


def _flag_value(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)
