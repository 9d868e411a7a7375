"""An export as a static web page that generates text in the browser: write the folder, weights and all.

    <out>/index.html, page.js, worker.js,  the page and its generation code (copied from web/)
          multiply.wasm
    <out>/model.json                       the manifest: vocabulary, model facts, the page's default settings, and
                                           where each tensor lies in the weights file
    <out>/weights-<sha256 prefix>.bin      char_lstm.step_weights, little-endian; named by its content, so a
                                           browser or static host never pairs a new model.json with old weights

Nothing in the folder is fetched from anywhere else: `python -m http.server -d <out>` or any static host serves it.
"""

import dataclasses
import hashlib
import json
import os
import pathlib

import keras
import numpy as np

import export
from config import Config, ModelSettings
from errors import UserError, os_error_reason
from files import write_file_atomically
from models.char_lstm import build_model, step_weights

FORMAT_VERSION = 1
MANIFEST_FILE = "model.json"
ASSETS_DIR = pathlib.Path(__file__).resolve().parent / "web"
ASSET_FILES = ("index.html", "page.js", "worker.js", "multiply.wasm")  # multiply.wasm: built from web/multiply.wat
MAX_PAGE_LENGTH = 100_000  # the page's length box allows at most this many characters (page.js)
_ALIGNMENT = 16  # bytes: every tensor starts at a multiple, as typed arrays over the file need


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One tensor as the page stores it: `data` (float32, float16 or int8) and, for int8, one float32 scale per row."""

    name: str
    shape: tuple[int, ...]
    data: np.ndarray
    scales: np.ndarray | None = None

    def values(self) -> np.ndarray:
        """The float32 values the browser computes with."""
        values = self.data.astype(np.float32)
        return values * self.scales[:, None] if self.scales is not None else values


def site_tensors(exported: export.Export) -> list[Tensor]:
    """The export's weights as char_lstm.StepWeights, in float32, laid out as worker.js reads them.

    first_gates [vocab, 4 * units_1] is a row per id. The matrices h multiplies are stored one row per
    output ([outputs, inputs], the transpose of StepWeights'), so each output is one pass over contiguous
    memory: outgoing_k [4 * units_k+1 + 4 * units_k, units_k], logits_kernel [vocab, units_last].
    """
    weights = step_weights(export.load_model(exported))
    arrays = {"first_gates": weights.first_gates.numpy()}
    for k, outgoing in enumerate(weights.outgoing):
        arrays[f"outgoing_{k}"] = outgoing.numpy().T
    for k, bias in enumerate(weights.biases, start=1):  # the bias of LSTM k + 1 (0-based k), added after LSTM k's product
        arrays[f"bias_{k}"] = bias.numpy()
    arrays["logits_kernel"] = weights.logits_kernel.numpy().T
    arrays["logits_bias"] = weights.logits_bias.numpy()
    return [Tensor(name, array.shape, np.ascontiguousarray(array, np.float32)) for name, array in arrays.items()]


def shrink(tensor: Tensor, dtype: str) -> Tensor:
    """A float32 tensor in `dtype`: float16, or int8 with a scale per row (the row's largest magnitude / 127).

    Vectors (biases) stay float32: they are small, and every gate depends on them.
    """
    if dtype == "float32" or len(tensor.shape) == 1:
        return tensor
    if dtype == "float16":
        return dataclasses.replace(tensor, data=tensor.data.astype(np.float16))
    if dtype == "int8":
        largest = np.abs(tensor.data).max(axis=1)
        scales = np.where(largest > 0, largest / 127, 1).astype(np.float32)
        data = np.clip(np.round(tensor.data / scales[:, None]), -127, 127).astype(np.int8)
        return dataclasses.replace(tensor, data=data, scales=scales)
    raise ValueError(f"unknown weights type {dtype!r}")


def browser_model(exported: export.Export, *, weights_dtype: str) -> keras.Model:
    """A Keras model computing what the page computes with `weights_dtype` weights, for scoring them (evaluation.py).

    build_model with the first LSTM's input part folded into the embedding: the embedding is first_gates
    (embedding_dim = 4 * units), the first kernel the identity and its bias zero, so that every product
    uses the page's (shrunk) values.
    """
    values = {tensor.name: tensor.values() for tensor in (shrink(t, weights_dtype) for t in site_tensors(exported))}
    first_gates = values["first_gates"]
    next_kernel_width = values["bias_1"].shape[0]
    outgoing = values["outgoing_0"].T  # [units, 4 * units of LSTM 2 | 4 * units of LSTM 1]
    settings = ModelSettings(embedding_dim=first_gates.shape[1], rnn_units=outgoing.shape[0], dropout=0.0)
    model = build_model(settings, exported.vocabulary.size)
    model.get_layer("embedding").set_weights([first_gates])
    model.get_layer("lstm_1").set_weights(
        [np.eye(first_gates.shape[1], dtype=np.float32), outgoing[:, next_kernel_width:], np.zeros(first_gates.shape[1], np.float32)]
    )
    model.get_layer("lstm_2").set_weights([outgoing[:, :next_kernel_width], values["outgoing_1"].T, values["bias_1"]])
    model.get_layer("logits").set_weights([values["logits_kernel"].T, values["logits_bias"]])
    return model


def write_site(exported: export.Export, out: str | os.PathLike, *, config: Config | None = None, weights_dtype: str = "float32") -> pathlib.Path:
    """Writes the web page of `exported` into the folder `out`; returns its path.

    `config` gives the page's default settings (seed text, length, temperature, top-k, top-p, seed);
    by default the export's own. Each file is written atomically, model.json last, and weights files of
    earlier writes are then removed, so a reader sees the old site or the new one.
    """
    out = pathlib.Path(os.path.abspath(out))
    _check_out(out, exported)
    config = config or exported.config
    tensors = [shrink(tensor, weights_dtype) for tensor in site_tensors(exported)]
    weights, layout = _pack(tensors)
    weights_file = f"weights-{hashlib.sha256(weights).hexdigest()[:16]}.bin"
    manifest = {
        "format": "charbook web page",
        "format_version": FORMAT_VERSION,
        "units": [tensor.shape[1] for tensor in tensors if tensor.name.startswith("outgoing_")],  # per LSTM
        "vocab_size": exported.vocabulary.size,
        "vocabulary": {"chars": list(exported.vocabulary.chars), "unknown_id": 0},
        "lowercase": exported.config.lowercase,
        "weights": {"file": weights_file, "bytes": len(weights), "dtype": weights_dtype, "tensors": layout},
        "facts": describe(exported, weights_dtype=weights_dtype, weights_bytes=len(weights)),
        "defaults": {
            "seed_text": config.seed_text,
            "length": min(max(config.length, 1), MAX_PAGE_LENGTH),
            "temperature": config.temperature,
            "top_k": config.top_k,
            "top_p": config.top_p,
            "seed": config.seed,
        },
    }
    try:
        for name in ASSET_FILES:
            write_file_atomically(out / name, (ASSETS_DIR / name).read_bytes())
        write_file_atomically(out / weights_file, weights)
        write_file_atomically(out / MANIFEST_FILE, json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8"))
        for old in out.glob("weights-*.bin"):
            if old.name != weights_file:
                old.unlink()
    except OSError as error:
        raise UserError(f"cannot write the web page to {out}: {os_error_reason(error)}; choose another --out") from None
    return out


def describe(exported: export.Export, *, weights_dtype: str, weights_bytes: int) -> dict:
    """The model's facts the page shows: what it was trained on, how long, how well, its size."""
    cfg = exported.config
    if cfg.corpus == "gutenberg":
        books = ", ".join(str(book) for book in cfg.books)
        corpus = f"Project Gutenberg ebook{'s' if len(cfg.books) > 1 else ''} {books}"
    elif cfg.corpus == "files":
        corpus = f"text files {cfg.files}"
    else:
        corpus = f"TensorFlow Datasets {cfg.corpus.removeprefix('tfds:')} ({cfg.tfds_split} split)"
    if cfg.lowercase:
        corpus += ", lower-cased"
    return {
        "corpus": corpus,
        "steps": exported.steps_completed,
        "validation_bits_per_char": exported.validation_bits_per_char,
        "model": f"embedding {cfg.embedding_dim}, 2 LSTM layers of {cfg.rnn_units} units, {len(exported.vocabulary.chars)} characters",
        "weights": f"{weights_dtype}, {weights_bytes / 1e6:.1f} MB",
    }


def _pack(tensors: list[Tensor]) -> tuple[bytes, dict]:
    """The tensors back to back in one little-endian buffer, and where each lies in it."""
    pieces, layout, offset = [], {}, 0

    def append(array: np.ndarray) -> int:
        nonlocal offset
        start = offset
        data = array.astype(array.dtype.newbyteorder("<")).tobytes()
        padding = -len(data) % _ALIGNMENT
        pieces.append(data + bytes(padding))
        offset += len(data) + padding
        return start

    for tensor in tensors:
        entry = {"shape": list(tensor.shape), "dtype": str(tensor.data.dtype), "offset": append(tensor.data)}
        if tensor.scales is not None:
            entry["scales_offset"] = append(tensor.scales)
        layout[tensor.name] = entry
    return b"".join(pieces), layout


def _check_out(out: pathlib.Path, exported: export.Export) -> None:
    if out.is_file():
        raise UserError(f"--out={out} is a file; give a folder for the web page (it is made if missing)")
    export_dir = pathlib.Path(os.path.abspath(exported.directory))
    if out == export_dir or export_dir in out.parents:
        raise UserError(
            f"--out={out} is inside the export {export_dir}, which a new export replaces whole; choose a folder outside it, "
            "e.g. --out=site"
        )
