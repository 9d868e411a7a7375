"""The one Config type shared by train.py, generate.py and the export: every setting, its default and its help."""

import dataclasses
import json
import urllib.parse
from dataclasses import dataclass, field

from errors import UserError

OFFICIAL_GUTENBERG_MIRROR = "https://www.gutenberg.org"
# Classic English novels, all held by the test mirror in ../shared/corpora/gutenberg:
# Alice, Frankenstein, Dorian Gray, Pride and Prejudice, Sherlock Holmes, Moby Dick.
DEFAULT_BOOKS = (11, 84, 174, 1342, 1661, 2701)
CORPUS_KINDS = ("gutenberg", "files")
LR_DECAYS = ("cosine", "linear", "constant")
STRATEGIES = ("auto", "default", "mirrored", "multiworker", "tpu")


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
    books: tuple[int, ...] = _setting(
        DEFAULT_BOOKS,
        "data",
        "Project Gutenberg ebook ids for --corpus=gutenberg: ids and ranges, comma separated (84,1342,1000-1100), "
        "or @FILE for a file of them (one or more per line, # starts a comment).",
    )
    files: str = _setting(
        "",
        "data",
        "Glob pattern(s) of text files (UTF-8, Windows-1252 or Latin-1), comma separated, for --corpus=files "
        "(e.g. 'my/texts/*.txt').",
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
    download_workers: int = _setting(8, "data", "Books downloaded at the same time.")
    download_timeout: float = _setting(
        60.0, "data", "Seconds to wait for a mirror to connect or send more of a book before that attempt fails (3 attempts)."
    )
    skip_missing_books: bool = _setting(
        False, "data", "Warn about books that cannot be fetched and go on with the rest, instead of stopping."
    )
    lowercase: bool = _setting(False, "data", "Lower-case all text before training, so the model learns fewer characters.")
    collapse_whitespace: bool = _setting(
        False,
        "data",
        "Reflow text: runs of spaces, tabs and single line breaks inside a paragraph become one space, and paragraphs "
        "are separated by exactly one blank line (a line empty but for spaces ends a paragraph). "
        "Verse and tables lose their line breaks.",
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
    dropout: float = _setting(
        0.0,
        "model",
        "Dropout rate applied to the output of each LSTM layer while training (0: none). It sits between the "
        "layers, not inside the recurrence, so GPUs keep the fused cuDNN kernel.",
    )

    # --- train ---
    epochs: int = _setting(1, "train", "Passes over the training text. Ignored when --steps is set.")
    steps: int = _setting(0, "train", "Total training steps (batches); when set, overrides --epochs and the text repeats as needed.")
    learning_rate: float = _setting(1e-3, "train", "Adam learning rate (the peak, after any warm-up).")
    warmup_steps: int = _setting(0, "train", "Steps over which the learning rate rises linearly from 0 to --learning_rate.")
    lr_decay: str = _setting(
        "constant",
        "train",
        "After warm-up the learning rate stays 'constant', or decays ('cosine' or 'linear') to --final_lr_fraction of "
        "its peak by the last step. Decay helps long runs finish lower; short runs learn fastest at a constant rate.",
    )
    final_lr_fraction: float = _setting(0.1, "train", "The learning rate at the last step, as a fraction of --learning_rate.")
    clipnorm: float = _setting(
        5.0, "train", "Scale the gradients down whenever their global norm exceeds this (0: never); keeps LSTMs stable."
    )
    patience: int = _setting(
        0, "train", "Stop early after this many epochs in a row without a better validation score (0: never stop early)."
    )
    sample_length: int = _setting(
        200, "train", "Characters of text sampled from the model and printed (and logged) after every epoch (0: none)."
    )
    checkpoint_dir: str = _setting(
        "", "train", "Where training checkpoints go; rerunning the same command resumes from them. Default: <export_dir>.checkpoints"
    )
    checkpoint_every: int = _setting(500, "train", "Save a checkpoint every this many steps (and after every epoch).")
    keep_checkpoints: int = _setting(3, "train", "How many of the latest checkpoints to keep.")
    resume: bool = _setting(
        True, "train", "Continue from the latest checkpoint in --checkpoint_dir if there is one; --noresume starts over."
    )
    strategy: str = _setting(
        "auto",
        "train",
        "How to use the hardware: 'auto' (a TPU if there is one, else all GPUs, else the CPU), 'default' (one device), "
        "'mirrored' (all local GPUs), 'multiworker' (machines listed in $TF_CONFIG) or 'tpu'.",
    )
    mixed_precision: bool = _setting(
        False,
        "train",
        "Compute in float16 on GPUs (bfloat16 on TPUs) with float32 weights, logits and loss: about twice as fast on "
        "recent accelerators; no gain on CPUs.",
    )
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
    if cfg.corpus == "gutenberg" and not _is_mirror(cfg.gutenberg_mirror):
        problems.append(
            f"--gutenberg_mirror={cfg.gutenberg_mirror!r} is neither an http://, https:// or file:// URL nor a directory "
            f"(the official one is {OFFICIAL_GUTENBERG_MIRROR})"
        )
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
        ("warmup_steps", 0, 1_000_000_000),
        ("patience", 0, 1_000_000),
        ("sample_length", 0, 100_000),
        ("checkpoint_every", 1, 1_000_000_000),
        ("keep_checkpoints", 1, 1_000),
        ("length", 0, 100_000_000),
        ("top_k", 0, 1_000_000),
        ("num_samples", 1, 65_536),
        ("seed", 0, 2**31 - 1),
        ("download_workers", 1, 256),
    ]:
        value = getattr(cfg, name)
        if not low <= value <= high:
            problems.append(f"--{name}={value} must be between {low:,} and {high:,}")
    if not 0 <= cfg.validation_fraction < 1:
        problems.append(f"--validation_fraction={cfg.validation_fraction} must be at least 0 and below 1")
    if not 0 < cfg.download_timeout <= 3600:
        problems.append(f"--download_timeout={cfg.download_timeout} must be above 0 and at most 3600 seconds")
    # Measured (training.py, DIVERGENCE_FACTOR): 0.001 to 0.03 trains; at 1 Adam drove the loss of models of 64
    # units or more to 22-58 times a uniform guess's, and at 3 and 10 even that of a model of 16 units to 5-17 times.
    if not 0 < cfg.learning_rate <= 1:
        problems.append(f"--learning_rate={cfg.learning_rate} must be above 0 and at most 1 (the default is 0.001)")
    if not 0 <= cfg.dropout < 1:
        problems.append(f"--dropout={cfg.dropout} must be at least 0 and below 1")
    if cfg.lr_decay not in LR_DECAYS:
        problems.append(f"--lr_decay={cfg.lr_decay!r} is not one of {', '.join(LR_DECAYS)}")
    if not 0 <= cfg.final_lr_fraction <= 1:
        problems.append(f"--final_lr_fraction={cfg.final_lr_fraction} must be between 0 and 1")
    # Gradient norms measured at most 1.4 in healthy training and 15,000 at --learning_rate=10, so a bound above a
    # million clips nothing (0 says that); inf would make Keras's clipping return NaN gradients (measured).
    if not 0 <= cfg.clipnorm <= 1_000_000:
        problems.append(f"--clipnorm={cfg.clipnorm} must be 0 (no clipping) or positive, at most 1,000,000")
    if cfg.strategy not in STRATEGIES:
        problems.append(f"--strategy={cfg.strategy!r} is not one of {', '.join(STRATEGIES)}")
    # At temperature t a character p1/p2 times likelier than another is drawn (p1/p2)^(1/t) times as often: above
    # 100 even odds of a billion to one become 1.23 to one, so the text is noise whatever the model learned.
    if not 0 <= cfg.temperature <= 100:
        problems.append(f"--temperature={cfg.temperature} must be 0 (greedy) or positive, at most 100")
    if not 0 < cfg.top_p <= 1:
        problems.append(f"--top_p={cfg.top_p} must be above 0 and at most 1")
    if cfg.window_stride > cfg.seq_len + 1:
        problems.append(f"--window_stride={cfg.window_stride} must be at most --seq_len + 1 = {cfg.seq_len + 1} (0: no overlap)")
    if not cfg.export_dir:
        problems.append("--export_dir must not be empty")
    return problems


def _is_mirror(mirror: str) -> bool:
    """A local directory (any path), or a URL urllib can fetch from."""
    if "://" not in mirror:
        return bool(mirror.strip())
    try:
        parts = urllib.parse.urlsplit(mirror)
        parts.port  # raises ValueError for a port that is not a number
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        return False
    return parts.scheme == "file" or (parts.scheme in ("http", "https") and bool(parts.hostname))
