"""The export directory, the one place that knows its layout: write it atomically, read it back, check it.

    <export_dir>/config.json       format version, every Config setting, steps_completed, vocab_size,
                                   and the size and SHA-256 of the weights file
    <export_dir>/vocab.json        the characters, in id order (pipeline/vocab.py)
    <export_dir>/model.weights.h5  Keras weights of models/char_lstm.build_model (no pickle anywhere)
    <export_dir>/saved_model/      TensorFlow SavedModel with a "generate" signature, for TF Serving or any
                                   TensorFlow program (models/serving.py); charbook itself reads the files above
"""

import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import tempfile

import keras

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
EXPORT_NAMES = {CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE, SAVED_MODEL_DIR}


@dataclasses.dataclass(frozen=True)
class Export:
    directory: pathlib.Path
    config: Config
    vocabulary: Vocabulary
    steps_completed: int


def write_export(
    directory: str | os.PathLike, *, model: keras.Model, config: Config, vocabulary: Vocabulary, steps_completed: int
) -> pathlib.Path:
    """Writes a complete export into a temporary directory beside `directory`, then swaps it in.

    A crash at any moment leaves either the previous export or the new one, whole.
    """
    directory = _absolute(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    _recover_interrupted_swap(directory)
    _refuse_to_replace_other_files(directory)
    for stale in directory.parent.glob(f".{directory.name}.partial-*"):  # left by a write that was killed
        shutil.rmtree(stale, ignore_errors=True)
    staging = pathlib.Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.partial-"))
    try:
        model.save_weights(staging / WEIGHTS_FILE)
        save_generation_model(staging / SAVED_MODEL_DIR, model, vocabulary, lowercase=config.lowercase)
        weights_bytes = (staging / WEIGHTS_FILE).read_bytes()
        manifest = {
            "format_version": FORMAT_VERSION,
            "steps_completed": steps_completed,
            "vocab_size": vocabulary.size,
            "weights": {"file": WEIGHTS_FILE, "bytes": len(weights_bytes), "sha256": hashlib.sha256(weights_bytes).hexdigest()},
            "config": config.to_json_dict(),
            "saved_model": {"directory": SAVED_MODEL_DIR, "signature": SIGNATURE},
        }
        (staging / VOCAB_FILE).write_text(vocabulary.to_json(), encoding="utf-8")
        (staging / CONFIG_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        for path in staging.rglob("*"):
            _fsync(path)
        _fsync(staging)
        previous = _previous_copy(directory)
        if directory.exists():
            os.rename(directory, previous)
        os.rename(staging, directory)
        _fsync(directory.parent)
        shutil.rmtree(previous, ignore_errors=True)
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
    return directory


def check_can_write(directory: str | os.PathLike) -> None:
    """Fails now, not after hours of training, if an export could not be written to `directory`."""
    directory = _absolute(directory)
    _refuse_to_replace_other_files(directory)
    parent = directory.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as error:
        raise UserError(f"cannot write the export to {directory}: {error.strerror}; choose another --export_dir") from None


def load_export(directory: str | os.PathLike) -> Export:
    """Reads and checks an export's config and vocabulary; see load_model for the weights."""
    directory = pathlib.Path(directory)
    _recover_interrupted_swap(directory)
    if not directory.is_dir():
        raise UserError(f"no export at {directory}: train one with train.py --export_dir={directory}, or fix --export_dir")
    for name in (CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE):
        if not (directory / name).is_file():
            raise UserError(f"the export at {directory} is incomplete: {name} is missing; export the model again")
    try:
        manifest = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
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
    except (ValueError, KeyError, TypeError, UserError) as error:
        raise _damaged_config(directory, error) from None
    vocabulary = Vocabulary.from_json((directory / VOCAB_FILE).read_bytes())  # bytes: bad UTF-8 is damage it reports
    if vocabulary.size != vocab_size:
        raise UserError(
            f"the export at {directory} does not hang together: {VOCAB_FILE} has {vocabulary.size} ids but the "
            f"weights were trained for {vocab_size}; export the model again"
        )
    _check_weights_file(directory, manifest.get("weights", {}))
    return Export(directory=directory, config=config, vocabulary=vocabulary, steps_completed=steps_completed)


def load_model(export: Export, *, batch_size: int | None = None, stateful: bool = False) -> keras.Model:
    """build_model for the export's config and vocabulary, with the exported weights loaded."""
    model = build_model(export.config, export.vocabulary.size, batch_size=batch_size, stateful=stateful)
    try:
        model.load_weights(export.directory / WEIGHTS_FILE)
    except (OSError, ValueError, KeyError) as error:
        raise UserError(
            f"cannot load {export.directory / WEIGHTS_FILE}: it does not match the exported config or is damaged ({error}); "
            "export the model again"
        ) from None
    return model


def _check_weights_file(directory: pathlib.Path, expected: dict) -> None:
    """A truncated or altered weights file is caught here, before Keras reads half of it."""
    data = (directory / WEIGHTS_FILE).read_bytes()
    if "bytes" in expected and len(data) != expected["bytes"]:
        raise UserError(
            f"{directory / WEIGHTS_FILE} is truncated or damaged: {len(data):,} bytes, expected {expected['bytes']:,}; "
            "export the model again"
        )
    if "sha256" in expected and hashlib.sha256(data).hexdigest() != expected["sha256"]:
        raise UserError(f"{directory / WEIGHTS_FILE} is damaged: its checksum does not match; export the model again")


def _absolute(directory: str | os.PathLike) -> pathlib.Path:
    # abspath, not resolve: "." and ".." get a name of their own, and a symlinked export is replaced, not its target.
    return pathlib.Path(os.path.abspath(directory))


def _refuse_to_replace_other_files(directory: pathlib.Path) -> None:
    """A new export replaces the directory whole, so it must hold an export or nothing: never the user's own files."""
    if directory.is_file():
        raise UserError(f"--export_dir={directory} is a file, not an export directory; choose another --export_dir")
    others = sorted(p.name for p in directory.iterdir() if p.name not in EXPORT_NAMES) if directory.is_dir() else []
    if others:
        listed = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise UserError(
            f"--export_dir={directory} holds files that are not part of an export ({listed}), and an export replaces "
            "the whole directory; choose another --export_dir, e.g. a new one"
        )


def _damaged_config(directory: pathlib.Path, error: Exception) -> UserError:
    return UserError(f"{directory / CONFIG_FILE} is damaged ({error}); export the model again")


def _previous_copy(directory: pathlib.Path) -> pathlib.Path:
    return directory.with_name(f".{directory.name}.previous")


def _recover_interrupted_swap(directory: pathlib.Path) -> None:
    """A crash between write_export's two renames leaves only the previous copy: put it back.

    A crash after both renames leaves the new export whole and the previous copy (partly) deleted: finish that.
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
