"""The export directory, the one place that knows its layout: write it atomically, read it back, check it.

    <export_dir>/config.json       format version, every Config setting, steps_completed, vocab_size,
                                   validation_bits_per_char (null without validation text), and the size
                                   and SHA-256 of the weights file
    <export_dir>/vocab.json        the characters, in id order (pipeline/vocab.py)
    <export_dir>/model.weights.h5  Keras weights of models/char_lstm.build_model (no pickle anywhere)
    <export_dir>/saved_model/      TensorFlow SavedModel with a "generate" signature, for TF Serving or any
                                   TensorFlow program (models/serving.py); charbook itself reads the files above
    <export_dir>/charbook.json     the marker (workdirs.py): charbook wrote this directory, and which files

One writer at a time (the directory's lock), and a new export is swapped in whole, so readers see
the old export or the new one; readers never change anything on disk.
"""

import dataclasses
import hashlib
import json
import os
import pathlib
import re
import secrets
import shutil
import sys
import tempfile

import keras

import workdirs
from config import Config
from errors import UserError, os_error_reason
from models.char_lstm import build_model
from models.serving import SIGNATURE, save_generation_model
from pipeline.vocab import Vocabulary

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
WEIGHTS_FILE = "model.weights.h5"
SAVED_MODEL_DIR = "saved_model"
# Everything an export held before it carried a marker (charbook.json, which lists the files of newer ones).
LEGACY_EXPORT_FILES = re.compile(
    r"config\.json|vocab\.json|model\.weights\.h5|saved_model(/assets|/fingerprint\.pb|/saved_model\.pb"
    r"|/variables(/variables\.index|/variables\.data-\d+-of-\d+)?)?"
)
# What to do about a damaged export, said by every message that finds one.
EXPORT_AGAIN = "export the model again: rerun the train.py command that wrote it (it resumes from its checkpoints)"
_READ_ATTEMPTS = 100  # each retry means a whole new export was swapped in meanwhile: 100 in a row is no accident


@dataclasses.dataclass(frozen=True)
class Export:
    directory: pathlib.Path
    config: Config
    vocabulary: Vocabulary
    steps_completed: int
    weights: bytes = dataclasses.field(repr=False)  # the weights file as read with the config: the same export's
    validation_bits_per_char: float | None = None  # of the exported weights; None without validation text or in older exports


def write_export(
    directory: str | os.PathLike,
    *,
    model: keras.Model,
    config: Config,
    vocabulary: Vocabulary,
    steps_completed: int,
    validation_bits_per_char: float | None = None,
) -> pathlib.Path:
    """Writes a complete export into a temporary directory beside `directory`, then swaps it in.

    A crash at any moment leaves either the previous export or the new one, whole; readers at any
    moment see one of them, whole (load_export). Holds the directory's lock while it writes.
    """
    directory = _absolute(directory)
    with workdirs.exclusive_use(directory, flag="--export_dir"):
        _recover_interrupted_swap(directory)
        _check_replaceable(directory)
        for stale in directory.parent.glob(f".{directory.name}.partial-*"):  # left by a write that was killed
            shutil.rmtree(stale, ignore_errors=True)
        staging = directory.with_name(f".{directory.name}.partial-{secrets.token_hex(4)}")
        try:
            staging.mkdir(0o777)  # not tempfile.mkdtemp's 0o700: an export follows the umask, as a shared folder should
            _write_files(
                staging,
                model=model,
                config=config,
                vocabulary=vocabulary,
                steps_completed=steps_completed,
                validation_bits_per_char=validation_bits_per_char,
            )
            for path in staging.rglob("*"):
                _fsync(path)
            _fsync(staging)
        except OSError as error:  # a full disk, above all
            shutil.rmtree(staging, ignore_errors=True)
            kept = "the previous export there is unchanged" if directory.exists() else "nothing was written there"
            raise UserError(
                f"cannot write the export to {directory}: {os_error_reason(error)}; {kept}. "
                "Free some disk space or choose another --export_dir, then rerun: training resumes from its last checkpoint"
            ) from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _swap_in(staging, directory)
    return directory


def _write_files(
    staging: pathlib.Path, *, model, config: Config, vocabulary: Vocabulary, steps_completed: int, validation_bits_per_char
) -> None:
    model.save_weights(staging / WEIGHTS_FILE)
    save_generation_model(staging / SAVED_MODEL_DIR, model, vocabulary, lowercase=config.lowercase)
    weights_bytes = (staging / WEIGHTS_FILE).read_bytes()
    manifest = {
        "format_version": FORMAT_VERSION,
        "steps_completed": steps_completed,
        "vocab_size": vocabulary.size,
        "validation_bits_per_char": validation_bits_per_char,
        "weights": {"file": WEIGHTS_FILE, "bytes": len(weights_bytes), "sha256": hashlib.sha256(weights_bytes).hexdigest()},
        "config": config.to_json_dict(),
        "saved_model": {"directory": SAVED_MODEL_DIR, "signature": SIGNATURE},
    }
    (staging / VOCAB_FILE).write_text(vocabulary.to_json(), encoding="utf-8")
    (staging / CONFIG_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    # Last: the marker lists everything written, so that only those files are ever replaced.
    files = workdirs.tree(staging) + [workdirs.MARKER_FILE]
    marker = workdirs.marker_json(workdirs.EXPORT, format_version=FORMAT_VERSION, files=files)
    (staging / workdirs.MARKER_FILE).write_text(marker, encoding="utf-8")


def _swap_in(staging: pathlib.Path, directory: pathlib.Path) -> None:
    """Two renames put the new export in place of the old; a crash between them leaves the old one as
    `.<name>.previous`, which readers read and the next writer puts back (_recover_interrupted_swap)."""
    previous = _previous_copy(directory)
    try:
        if directory.exists():
            os.rename(directory, previous)
        os.rename(staging, directory)
        _fsync(directory.parent)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        try:
            _recover_interrupted_swap(directory)
            kept = "the previous export there is unchanged"
        except OSError:
            kept = f"the previous export is kept at {previous}: rename it back to {directory.name}"
        raise UserError(f"cannot replace the export at {directory}: {os_error_reason(error)}; {kept}") from None
    shutil.rmtree(previous, ignore_errors=True)
    if previous.exists():
        print(f"warning: the previous export, now replaced, could not be deleted: delete {previous} yourself", file=sys.stderr)


def check_can_write(directory: str | os.PathLike) -> None:
    """Fails now, not after hours of training, if an export could not be written to `directory`.

    Call it while holding the directory's lock (train.py does): it also puts back an export that a
    crash left half swapped.
    """
    directory = _absolute(directory)
    parent = directory.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=parent):
            pass
        _recover_interrupted_swap(directory)
    except OSError as error:
        raise UserError(f"cannot write the export to {directory}: {os_error_reason(error)}; choose another --export_dir") from None
    _check_replaceable(directory)


def load_export(directory: str | os.PathLike) -> Export:
    """Reads and checks an export's config, vocabulary and weights, all of one export even while train.py replaces it.

    Nothing on disk is changed: mending what a crash left is the writer's job.
    """
    directory = pathlib.Path(directory)
    files = _read_files_of_one_export(directory)
    marker = workdirs.parse_marker(files[workdirs.MARKER_FILE])
    workdirs.check_kind(
        marker,
        workdirs.EXPORT,
        place=str(directory),
        advice="give --export_dir the directory train.py exported to (the one it printed at the end)",
    )
    if marker is None and all(files[name] is None for name in (CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE)):
        raise UserError(
            f"no export in {directory}: it holds no {CONFIG_FILE}, {VOCAB_FILE} or {WEIGHTS_FILE}; give --export_dir the "
            "directory train.py exported to (the one it printed at the end)"
        )
    for name in (CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE):
        if files[name] is None:
            raise UserError(f"the export at {directory} is incomplete: {name} is missing; {EXPORT_AGAIN}")
    try:
        manifest = json.loads(files[CONFIG_FILE].decode("utf-8"))
        version = int(manifest["format_version"])
    except (ValueError, KeyError, TypeError) as error:
        raise _damaged_config(directory, error) from None
    # Before the settings: a newer version may hold settings this one reads differently.
    if version > FORMAT_VERSION:
        raise UserError(f"the export at {directory} has format version {version}, newer than this tool's {FORMAT_VERSION}; upgrade charbook")
    try:
        config = Config.from_json_dict(manifest["config"])  # a UserError if a setting is out of range
        steps_completed = int(manifest["steps_completed"])
        vocab_size = int(manifest["vocab_size"])
        validation = manifest.get("validation_bits_per_char")  # absent from exports written before it was kept
        validation_bits_per_char = None if validation is None else float(validation)
    except (ValueError, KeyError, TypeError, UserError) as error:
        raise _damaged_config(directory, error) from None
    vocabulary = Vocabulary.from_json(files[VOCAB_FILE])  # bytes: bad UTF-8 is damage it reports
    if vocabulary.size != vocab_size:
        raise UserError(
            f"the export at {directory} does not hang together: {VOCAB_FILE} has {vocabulary.size} ids but the "
            f"weights were trained for {vocab_size}; {EXPORT_AGAIN}"
        )
    _check_weights_file(directory, files[WEIGHTS_FILE], manifest.get("weights", {}))
    return Export(
        directory=directory,
        config=config,
        vocabulary=vocabulary,
        steps_completed=steps_completed,
        weights=files[WEIGHTS_FILE],
        validation_bits_per_char=validation_bits_per_char,
    )


def _read_files_of_one_export(directory: pathlib.Path) -> dict[str, bytes | None]:
    """The export's files (None for a missing one), all read from one directory that stayed in place meanwhile.

    A writer swaps a whole new directory in (_swap_in). Each file is opened through a handle on the
    directory, which keeps pointing at the directory it was opened on; if the path names another
    directory once the files are read, a swap came in between and they are read again.
    """
    if directory.is_file():
        raise UserError(f"--export_dir={directory} is a file, not an export; give the directory train.py exported to")
    previous = _previous_copy(_absolute(directory))
    for _ in range(_READ_ATTEMPTS):
        # Between a writer's two renames only the previous copy is there, whole.
        source = previous if not directory.is_dir() and previous.is_dir() else directory
        try:
            directory_fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            if directory.is_dir() or previous.is_dir():
                continue  # renamed just now
            raise UserError(
                f"no export at {directory}: train one with train.py --export_dir={directory}, or fix --export_dir"
            ) from None
        try:
            files = {name: _read_or_none(name, directory_fd) for name in (CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE, workdirs.MARKER_FILE)}
            if _still_at(source, os.fstat(directory_fd)):
                return files
        finally:
            os.close(directory_fd)
    raise UserError(f"the export at {directory} was replaced {_READ_ATTEMPTS} times while it was read; try again")


def _read_or_none(name: str, directory_fd: int) -> bytes | None:
    try:
        fd = os.open(name, os.O_RDONLY, dir_fd=directory_fd)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as file:
        return file.read()


def _still_at(path: pathlib.Path, opened: os.stat_result) -> bool:
    try:
        return os.path.samestat(os.stat(path), opened)
    except FileNotFoundError:
        return False


def load_model(export: Export, *, batch_size: int | None = None, stateful: bool = False) -> keras.Model:
    """build_model for the export's config and vocabulary, with the exported weights loaded."""
    model = build_model(export.config.model, export.vocabulary.size, batch_size=batch_size, stateful=stateful)
    # Keras reads weights from a path only: a private copy of the bytes load_export checked, not the export's
    # file, which a new export may have replaced since.
    with tempfile.TemporaryDirectory(prefix="charbook-weights-") as scratch:
        weights = pathlib.Path(scratch) / WEIGHTS_FILE
        weights.write_bytes(export.weights)
        try:
            model.load_weights(weights)
        except (OSError, ValueError, KeyError) as error:
            raise UserError(
                f"cannot load {export.directory / WEIGHTS_FILE}: it does not match the exported config or is damaged "
                f"({error}); {EXPORT_AGAIN}"
            ) from None
    return model


def _check_weights_file(directory: pathlib.Path, data: bytes, expected: dict) -> None:
    """A truncated or altered weights file is caught here, before Keras reads half of it."""
    if "bytes" in expected and len(data) != expected["bytes"]:
        raise UserError(
            f"{directory / WEIGHTS_FILE} is truncated or damaged: {len(data):,} bytes, expected {expected['bytes']:,}; "
            f"{EXPORT_AGAIN}"
        )
    if "sha256" in expected and hashlib.sha256(data).hexdigest() != expected["sha256"]:
        raise UserError(f"{directory / WEIGHTS_FILE} is damaged: its checksum does not match; {EXPORT_AGAIN}")


def _absolute(directory: str | os.PathLike) -> pathlib.Path:
    # abspath, not resolve: "." and ".." get a name of their own, and a symlinked export is replaced, not its target.
    return pathlib.Path(os.path.abspath(directory))


def _check_replaceable(directory: pathlib.Path) -> None:
    """A new export replaces the directory whole, so it must hold nothing but files an export of charbook wrote.

    Those are the files its marker lists, or for an export written before the marker existed, the
    files of that layout (LEGACY_EXPORT_FILES) beside a config.json of charbook's.
    """
    if directory.is_file():
        raise UserError(f"--export_dir={directory} is a file, not an export directory; choose another --export_dir")
    if not directory.is_dir():
        return
    present = workdirs.tree(directory)
    marker = workdirs.read_marker(directory)
    workdirs.check_kind(marker, workdirs.EXPORT, place=f"--export_dir={directory}", advice="choose another --export_dir")
    if marker is not None:
        others = sorted(set(present) - set(marker.get("files", [])))
    elif _is_legacy_export(directory):
        others = [path for path in present if not LEGACY_EXPORT_FILES.fullmatch(path)]
    elif present:
        raise UserError(
            f"--export_dir={directory} is not an export of charbook's (it holds {workdirs.describe_paths(present)}, "
            f"and no {workdirs.MARKER_FILE}), and an export replaces the whole directory; choose another --export_dir, "
            "e.g. a new one"
        )
    else:
        others = []
    if others:
        raise UserError(
            f"--export_dir={directory} holds files that are not part of the export ({workdirs.describe_paths(others)}), "
            "and an export replaces the whole directory; move them out or choose another --export_dir"
        )


def _is_legacy_export(directory: pathlib.Path) -> bool:
    try:
        manifest = json.loads((directory / CONFIG_FILE).read_bytes())
        return manifest["format_version"] == 1 and isinstance(manifest["config"], dict)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _damaged_config(directory: pathlib.Path, error: Exception) -> UserError:
    return UserError(f"{directory / CONFIG_FILE} is damaged ({error}); {EXPORT_AGAIN}")


def _previous_copy(directory: pathlib.Path) -> pathlib.Path:
    return directory.with_name(f".{directory.name}.previous")


def _recover_interrupted_swap(directory: pathlib.Path) -> None:
    """A crash between _swap_in's two renames leaves only the previous copy: put it back.

    A crash after both renames leaves the new export whole and the previous copy (partly) deleted: finish that.
    Only a writer, holding the directory's lock, may call this.
    """
    previous = _previous_copy(directory)
    if previous.is_dir() and not directory.exists():
        os.rename(previous, directory)
    elif previous.is_dir():
        shutil.rmtree(previous, ignore_errors=True)


def _fsync(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
