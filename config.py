"""The one Config type shared by train.py, generate.py and the export: every setting, its default and its help."""

import dataclasses
import json
from dataclasses import dataclass, field

from errors import UserError

OFFICIAL_GUTENBERG_MIRROR = "https://www.gutenberg.org"
# Classic English novels, all held by the test mirror in ../shared/corpora/gutenberg:
# Alice, Frankenstein, Dorian Gray, Pride and Prejudice, Sherlock Holmes, Moby Dick.
DEFAULT_BOOKS = (11, 84, 174, 1342, 1661, 2701)
CORPUS_KINDS = ("gutenberg", "files")


def _setting(default, group: str, help: str):
    """A Config field whose help text becomes the absl flag's help (see cli.py)."""
    return field(default=default, metadata={"group": group, "help": help})


@dataclass(frozen=True)
class Config:
    # --- run: used by every entry point ---
    seed: int = _setting(0, "run", "Random seed: fixes the shuffle order, the initial weights and the sampled text.")
    export_dir: str = _setting(
        "exports/model", "run", "Directory holding an export: config.json, vocab.json and model.weights.h5."
    )

    # --- data: where text comes from and how it is cut into training examples ---
    corpus: str = _setting(
        "gutenberg",
        "data",
        "Where training text comes from: 'gutenberg' (--books), 'files' (--files) or 'tfds:NAME', a TensorFlow "
        "Datasets dataset such as tfds:pg19 (a book per example) or tfds:tiny_shakespeare.",
    )
    books: tuple[int, ...] = _setting(DEFAULT_BOOKS, "data", "Project Gutenberg ebook ids, comma separated, for --corpus=gutenberg.")
    files: str = _setting(
        "", "data", "Glob pattern(s) of UTF-8 text files, comma separated, for --corpus=files (e.g. 'my/texts/*.txt')."
    )
    gutenberg_mirror: str = _setting(
        OFFICIAL_GUTENBERG_MIRROR,
        "data",
        "Gutenberg mirror laid out as cache/epub/<id>/pg<id>.txt: an http(s):// or file:// URL or a local directory. "
        "Default from $GUTENBERG_MIRROR.",
    )
    cache_dir: str = _setting(
        "", "data", "Where downloaded books are kept. Default from $CHARBOOK_CACHE_DIR, else ~/.cache/charbook."
    )
    seq_len: int = _setting(100, "data", "Characters per training example; windows of seq_len + 1 give (input, target).")
    validation_fraction: float = _setting(
        0.05, "data", "Fraction at the end of every book held out for validation (0 disables validation)."
    )
    shuffle_buffer: int = _setting(
        10_000, "data", "Training windows shuffled together: blocks of about this many windows, from 16 books at a time."
    )
    batch_size: int = _setting(128, "data", "Windows per training batch.")
    window_stride: int = _setting(
        0, "data", "Characters from the start of one training window to the next; 0: seq_len + 1 (no overlap), 1..seq_len: overlapping."
    )
    max_vocab: int = _setting(0, "data", "Keep only the N most frequent characters of the training text (0: all); the rest read as unknown.")
    min_char_count: int = _setting(1, "data", "Characters seen fewer times than this in the training text read as unknown.")
    deterministic: bool = _setting(
        True, "data", "Deliver batches in the order --seed fixes; false lets tf.data trade that order for speed."
    )
    data_service_address: str = _setting(
        "", "data", "Address of a tf.data service dispatcher (e.g. grpc://host:5050) whose workers make the training batches."
    )
    tfds_data_dir: str = _setting(
        "", "data", "Where TensorFlow Datasets keeps --corpus=tfds:... data (default: its own, ~/tensorflow_datasets)."
    )
    tfds_split: str = _setting("train", "data", "The split of a --corpus=tfds:... dataset to read, e.g. test; each example is a book.")

    # --- model: everything needed to rebuild the network (the vocabulary size comes from vocab.json) ---
    embedding_dim: int = _setting(256, "model", "Size of the character embedding.")
    rnn_units: int = _setting(512, "model", "Units in each of the two LSTM layers.")

    # --- train ---
    epochs: int = _setting(1, "train", "Passes over the training text. Ignored when --steps is set.")
    steps: int = _setting(0, "train", "Total training steps (batches); when set, overrides --epochs and the text repeats as needed.")
    learning_rate: float = _setting(1e-3, "train", "Adam learning rate.")
    log_every: int = _setting(100, "train", "Print a progress line and write TensorBoard scalars every this many steps.")
    logdir: str = _setting("", "train", "TensorBoard log directory. Default: <export_dir>.logs")

    # --- generate ---
    seed_text: str = _setting("The ", "generate", "Text that primes the model before sampling; it is printed first.")
    length: int = _setting(500, "generate", "Number of characters to generate after the seed text.")
    temperature: float = _setting(
        0.8, "generate", "Sampling temperature: below 1 is safer and more repetitive, above 1 more surprising; 0 is greedy."
    )

    top_k: int = _setting(0, "generate", "Sample only among the k most likely characters (0: all of them).")
    top_p: float = _setting(
        1.0, "generate", "Nucleus sampling: only among the most likely characters whose probabilities add up to p (1: all)."
    )
    num_samples: int = _setting(1, "generate", "Samples generated together in one batch; each is printed after a header line.")
    stop_at: str = _setting("", "generate", "End a sample just after the first time it writes this text (e.g. a blank line: $'\\n\\n').")
    allow_unknown: bool = _setting(
        False, "generate", "Read seed-text characters the model never saw as 'unknown character' instead of refusing them."
    )

    def __post_init__(self):
        problems = _find_problems(self)
        if problems:
            raise UserError("invalid settings: " + "; ".join(problems))

    def to_json_dict(self) -> dict:
        return {name: list(value) if isinstance(value, tuple) else value for name, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_json_dict(cls, values: dict) -> "Config":
        """Rebuilds a Config saved by to_json_dict; settings this version does not know are ignored."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for name, value in values.items():
            if name in known:
                kwargs[name] = tuple(value) if isinstance(value, list) else value
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), indent=2, ensure_ascii=False)


def fields_in_groups(*groups: str, skip: tuple[str, ...] = ()) -> list[dataclasses.Field]:
    """The Config fields of `groups`, in declaration order, less those named in `skip`."""
    return [f for f in dataclasses.fields(Config) if f.metadata["group"] in groups and f.name not in skip]


def _find_problems(cfg: Config) -> list[str]:
    problems = []
    if cfg.corpus not in CORPUS_KINDS and not (cfg.corpus.startswith("tfds:") and cfg.corpus != "tfds:"):
        problems.append(f"--corpus={cfg.corpus!r} is not one of {', '.join(CORPUS_KINDS)} or tfds:NAME (e.g. tfds:pg19)")
    if cfg.corpus == "gutenberg" and not cfg.books:
        problems.append("--corpus=gutenberg needs at least one id in --books")
    if cfg.corpus == "files" and not cfg.files.strip():
        problems.append("--corpus=files needs --files, e.g. --files='my/texts/*.txt'")
    if any(book_id <= 0 for book_id in cfg.books):
        problems.append("--books ids must be positive whole numbers")
    # Upper bounds catch typos (an extra zero or two) before they exhaust memory.
    for name, low, high in [
        ("seq_len", 1, 100_000),
        ("batch_size", 1, 1_000_000),
        ("window_stride", 0, 100_001),
        ("max_vocab", 0, 10_000_000),
        ("min_char_count", 1, 2**62),
        ("shuffle_buffer", 1, 100_000_000),
        ("embedding_dim", 1, 65_536),
        ("rnn_units", 1, 65_536),
        ("epochs", 1, 1_000_000),
        ("steps", 0, 1_000_000_000),
        ("log_every", 1, 1_000_000_000),
        ("length", 0, 100_000_000),
        ("top_k", 0, 1_000_000),
        ("num_samples", 1, 65_536),
        ("seed", 0, 2**31 - 1),
    ]:
        value = getattr(cfg, name)
        if not low <= value <= high:
            problems.append(f"--{name}={value} must be between {low:,} and {high:,}")
    if not 0 <= cfg.validation_fraction < 1:
        problems.append(f"--validation_fraction={cfg.validation_fraction} must be at least 0 and below 1")
    if not cfg.learning_rate > 0:
        problems.append(f"--learning_rate={cfg.learning_rate} must be positive")
    if not cfg.temperature >= 0:
        problems.append(f"--temperature={cfg.temperature} must be 0 (greedy) or positive")
    if not 0 < cfg.top_p <= 1:
        problems.append(f"--top_p={cfg.top_p} must be above 0 and at most 1")
    if cfg.window_stride > cfg.seq_len + 1:
        problems.append(f"--window_stride={cfg.window_stride} must be at most --seq_len + 1 = {cfg.seq_len + 1} (0: no overlap)")
    if not cfg.export_dir:
        problems.append("--export_dir must not be empty")
    return problems
