"""The one Config type shared by train.py, generate.py and the export: every setting, its default and its help."""

import dataclasses
import json
import re
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
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
WEB_WEIGHTS = ("float32", "float16", "int8")


@dataclass(frozen=True)
class Range:
    """The values a number setting may take; `words` says it where the bounds alone would not."""

    low: float
    high: float
    low_included: bool = True
    high_included: bool = True
    words: str = ""

    def problem(self, name: str, value) -> str | None:
        above_low = self.low <= value if self.low_included else self.low < value
        below_high = value <= self.high if self.high_included else value < self.high
        if above_low and below_high:
            return None
        if self.words:
            return f"--{name}={value} must be {self.words}"
        low, high = _number(self.low), _number(self.high)
        if not self.low_included:
            return f"--{name}={value} must be above {low} and at most {high}"
        if not self.high_included:
            return f"--{name}={value} must be at least {low} and below {high}"
        return f"--{name}={value} must be between {low} and {high}"


@dataclass(frozen=True)
class OneOf:
    """The values a text setting may take."""

    choices: tuple[str, ...]

    def problem(self, name: str, value) -> str | None:
        return None if value in self.choices else f"--{name}={value!r} is not one of {', '.join(self.choices)}"


@dataclass(frozen=True)
class LocalPath:
    """A directory charbook reads and writes with the system's own file calls (rename, flock), so not a URL."""

    def problem(self, name: str, value) -> str | None:
        if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", value):  # a URL's scheme, as RFC 3986 spells it
            return None
        return (
            f"--{name}={value!r} is a URL; charbook reads and writes exports, checkpoints, logs and caches in local or "
            f"mounted directories only (on Colab, Google Drive mounted at /content/drive): copy to or from gs:// with gsutil"
        )


def _setting(default, group: str, help: str, *, valid: Range | OneOf | LocalPath | None = None):
    """A Config field: its default, its group, the help text of its absl flag (see cli.py) and its valid values.

    Groups name who uses a setting ("run", "data", "model", "train", "generate"); a sub-group such as
    "data.fetch" says more (see fields_in_groups), so lists like "the settings free on resume" are derived.
    "record" holds what a run notes down for its export and no flag sets (books_query).
    """
    return field(default=default, metadata={"group": group, "help": help, "valid": valid})


def _number(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class Config:
    # --- run: used by every entry point ---
    seed: int = _setting(
        0, "run", "Random seed: fixes the shuffle order, the initial weights and the sampled text.", valid=Range(0, 2**31 - 1)
    )
    export_dir: str = _setting(
        "exports/model",
        "run",
        "Directory holding an export: config.json, vocab.json and model.weights.h5.",
        valid=LocalPath(),
    )

    # --- data: where text comes from and how it is cut into training examples ---
    # data.text: which text, cleaned how (what prepared data is keyed by); data.fetch: where books are fetched
    # from and kept (free to change on resume); data.training: how training batches are made (evaluate.py has none)
    corpus: str = _setting(
        "gutenberg",
        "data.text",
        "Where training text comes from: 'gutenberg' (--books), 'files' (--files) or 'tfds:NAME', a TensorFlow "
        "Datasets dataset such as tfds:pg19 (a book per example) or tfds:tiny_shakespeare.",
    )
    books: tuple[int, ...] = _setting(
        DEFAULT_BOOKS,
        "data.text",
        "Project Gutenberg books for --corpus=gutenberg, comma separated: catalog queries (author:austen, "
        "'lang:en subject:\"science fiction\" top:200'; terms author: title: subject: shelf: lang: type: top:N), "
        "ids and ranges (84,1342,1000-1100), or @FILE for a file of ids (one or more per line, # starts a comment). "
        "python books.py QUERY lists what a query selects.",
    )
    books_query: str = _setting(
        "",
        "record",
        "The --books value as given when it held a catalog query; books holds the ids it selected (kept in the export).",
    )
    files: str = _setting(
        "",
        "data.text",
        "Glob pattern(s) of text files (UTF-8, Windows-1252 or Latin-1), comma separated, for --corpus=files "
        "(e.g. 'my/texts/*.txt').",
    )
    tfds_split: str = _setting("train", "data.text", "The split of a --corpus=tfds:... dataset to read, e.g. test; each example is a book.")
    gutenberg_mirror: str = _setting(
        OFFICIAL_GUTENBERG_MIRROR,
        "data.fetch",
        "Gutenberg mirror laid out as cache/epub/<id>/pg<id>.txt: an http(s):// or file:// URL or a local directory. "
        "Default from $GUTENBERG_MIRROR.",
    )
    cache_dir: str = _setting(
        "",
        "data.fetch",
        "Where downloaded books are kept. Default from $CHARBOOK_CACHE_DIR, else ~/.cache/charbook.",
        valid=LocalPath(),
    )
    download_workers: int = _setting(8, "data.fetch", "Books downloaded at the same time.", valid=Range(1, 256))
    download_timeout: float = _setting(
        60.0,
        "data.fetch",
        "Seconds to wait for a mirror to connect or send more of a book before that attempt fails (3 attempts).",
        valid=Range(0, 3600, low_included=False, words="above 0 and at most 3600 seconds"),
    )
    catalog_max_age: float = _setting(
        7.0,
        "data.fetch",
        "Days a cached copy of the Gutenberg catalog (for --books queries) is used before it is fetched again.",
        valid=Range(0, 100_000),
    )
    refresh_catalog: bool = _setting(False, "data.fetch", "Fetch the Gutenberg catalog again now, however new the cached copy.")
    skip_missing_books: bool = _setting(
        False, "data", "Warn about books that cannot be fetched and go on with the rest, instead of stopping."
    )
    lowercase: bool = _setting(False, "data.text", "Lower-case all text before training, so the model learns fewer characters.")
    collapse_whitespace: bool = _setting(
        False,
        "data.text",
        "Reflow text: runs of spaces, tabs and single line breaks inside a paragraph become one space, and paragraphs "
        "are separated by exactly one blank line (a line empty but for spaces ends a paragraph). "
        "Verse and tables lose their line breaks.",
    )
    # Upper bounds on sizes catch typos (an extra zero or two) before they exhaust memory.
    seq_len: int = _setting(
        100, "data", "Characters per training example; windows of seq_len + 1 give (input, target).", valid=Range(1, 100_000)
    )
    validation_fraction: float = _setting(
        0.05,
        "data.training",
        "Fraction at the end of every book held out for validation (0 disables validation).",
        valid=Range(0, 1, high_included=False),
    )
    shuffle_buffer: int = _setting(
        10_000,
        "data.training",
        "Training windows shuffled together: blocks of about this many windows, from 16 books at a time.",
        valid=Range(1, 100_000_000),
    )
    batch_size: int = _setting(128, "data", "Windows per training batch.", valid=Range(1, 1_000_000))
    window_stride: int = _setting(
        0,
        "data.training",
        "Characters from the start of one training window to the next; 0: seq_len + 1 (no overlap), 1..seq_len: overlapping.",
        valid=Range(0, 100_001),
    )
    stream_windows: int = _setting(
        0,
        "data",
        "0: every window of seq_len + 1 characters starts from an empty LSTM state, and training shuffles windows one "
        "by one. N: each batch row reads a stream of N consecutive windows, one per step, the LSTM state carried "
        "from each window into the next (truncated backpropagation through time, as char-rnn trains), so the model "
        "learns from more than one window of context, as it generates; validation and evaluate.py score the same way.",
        valid=Range(0, 1_000_000),
    )
    max_vocab: int = _setting(
        0,
        "data.training",
        "Keep only the N most frequent characters of the training text (0: all); the rest read as unknown.",
        valid=Range(0, 10_000_000),
    )
    min_char_count: int = _setting(
        1, "data.training", "Characters seen fewer times than this in the training text read as unknown.", valid=Range(1, 2**62)
    )
    deterministic: bool = _setting(
        True, "data.training", "Deliver batches in the order --seed fixes; false lets tf.data trade that order for speed."
    )
    data_service_address: str = _setting(
        "", "data.training", "Address of a tf.data service dispatcher (e.g. grpc://host:5050) whose workers make the training batches."
    )
    tfds_data_dir: str = _setting(
        "", "data.fetch", "Where TensorFlow Datasets keeps --corpus=tfds:... data (default: its own, ~/tensorflow_datasets)."
    )

    # --- model: everything needed to rebuild the network (the vocabulary size comes from vocab.json) ---
    embedding_dim: int = _setting(256, "model", "Size of the character embedding.", valid=Range(1, 65_536))
    rnn_units: int = _setting(512, "model", "Units in each of the two LSTM layers.", valid=Range(1, 65_536))
    dropout: float = _setting(
        0.0,
        "model",
        "Dropout rate applied to the output of each LSTM layer while training (0: none). It sits between the "
        "layers, not inside the recurrence, so GPUs keep the fused cuDNN kernel.",
        valid=Range(0, 1, high_included=False),
    )

    # --- train ---
    epochs: int = _setting(1, "train", "Passes over the training text. Ignored when --steps or --train_minutes is set.", valid=Range(1, 1_000_000))
    steps: int = _setting(
        0,
        "train",
        "Total training steps (batches); when set, overrides --epochs and the text repeats as needed.",
        valid=Range(0, 1_000_000_000),
    )
    train_minutes: float = _setting(
        0.0,
        "train",
        "Train for about this many minutes instead of a number of steps (overrides --epochs): the steps after the "
        "first are timed, and as many steps as fit are planned before the learning rate starts to decay. A resumed "
        "run keeps the plan. Validation and samples after each epoch add their own time. 0: --steps or --epochs decide.",
        valid=Range(0, 1_000_000),
    )
    # Above 1 Adam drives the loss of even small models far above a uniform guess's (bench/README.md).
    learning_rate: float = _setting(
        1e-3,
        "train",
        "Adam learning rate (the peak, after any warm-up).",
        valid=Range(0, 1, low_included=False, words="above 0 and at most 1 (the default is 0.001)"),
    )
    warmup_steps: int = _setting(
        0, "train", "Steps over which the learning rate rises linearly from 0 to --learning_rate.", valid=Range(0, 1_000_000_000)
    )
    lr_decay: str = _setting(
        "constant",
        "train",
        "After warm-up the learning rate stays 'constant', or decays ('cosine' or 'linear') to --final_lr_fraction of "
        "its peak by the last step. Decay helps long runs finish lower; short runs learn fastest at a constant rate.",
        valid=OneOf(LR_DECAYS),
    )
    final_lr_fraction: float = _setting(
        0.1, "train", "The learning rate at the last step, as a fraction of --learning_rate.", valid=Range(0, 1)
    )
    adam_beta2: float = _setting(
        0.999,
        "train",
        "Adam's decay rate of its running average of squared gradients (Keras' default 0.999). Lower, e.g. "
        "0.99, adapts the step sizes sooner: better in short runs such as demo.flags' (bench/README.md).",
        valid=Range(0, 1, high_included=False),
    )
    # Healthy gradient norms are far below a million, so a larger bound clips nothing (0 says that); inf makes
    # Keras's clipping return NaN gradients (bench/README.md).
    clipnorm: float = _setting(
        5.0,
        "train",
        "Scale the gradients down whenever their global norm exceeds this (0: never); keeps LSTMs stable.",
        valid=Range(0, 1_000_000, words="0 (no clipping) or positive, at most 1,000,000"),
    )
    patience: int = _setting(
        0,
        "train",
        "Stop early after this many epochs in a row without a better validation score (0: never stop early).",
        valid=Range(0, 1_000_000),
    )
    sample_length: int = _setting(
        200,
        "train",
        "Characters of text sampled from the model and printed (and logged) after every epoch (0: none).",
        valid=Range(0, 100_000),
    )
    checkpoint_dir: str = _setting(
        "",
        "train",
        "Where training checkpoints go; rerunning the same command resumes from them. Default: <export_dir>.checkpoints",
        valid=LocalPath(),
    )
    checkpoint_every: int = _setting(
        500, "train", "Save a checkpoint every this many steps (and after every epoch).", valid=Range(1, 1_000_000_000)
    )
    keep_checkpoints: int = _setting(3, "train", "How many of the latest checkpoints to keep.", valid=Range(1, 1_000))
    resume: bool = _setting(
        True, "train", "Continue from the latest checkpoint in --checkpoint_dir if there is one; --noresume starts over."
    )
    strategy: str = _setting(
        "auto",
        "train",
        "How to use the hardware: 'auto' (a TPU if there is one, else all GPUs, else the CPU), 'default' (one device), "
        "'mirrored' (all local GPUs), 'multiworker' (machines listed in $TF_CONFIG) or 'tpu'.",
        valid=OneOf(STRATEGIES),
    )
    precision: str = _setting(
        "auto",
        "train",
        "What the model computes in, with float32 weights, logits and loss: 'auto' (bfloat16 on TPUs and on CPUs with "
        "native bfloat16, AVX-512 BF16 or AMX; float16 on GPUs; else float32), 'float32', 'bfloat16' or 'float16' "
        "(with loss scaling).",
        valid=OneOf(PRECISIONS),
    )
    log_every: int = _setting(
        100, "train", "Print a progress line and write TensorBoard scalars every this many steps.", valid=Range(1, 1_000_000_000)
    )
    steps_per_call: int = _setting(
        0,
        "train",
        "Training steps run in one compiled call, between which the host reads the losses; a call also ends at each "
        "progress line, checkpoint and validation. 0 (auto): all the steps between progress lines on a TPU, else 1.",
        valid=Range(0, 1_000_000_000),
    )
    # TensorBoard's writer alone could take a gs:// URL (through tf.io.gfile); one rule for every directory is plainer.
    logdir: str = _setting("", "train", "TensorBoard log directory. Default: <export_dir>.logs", valid=LocalPath())

    # --- generate (generate.sampling: how each next character is chosen) ---
    seed_text: str = _setting("The ", "generate", "Text that primes the model before sampling; it is printed first.")
    num_samples: int = _setting(
        1, "generate", "Samples generated together in one batch; each is printed after a header line.", valid=Range(1, 65_536)
    )
    length: int = _setting(
        500, "generate.sampling", "Number of characters to generate after the seed text.", valid=Range(0, 100_000_000)
    )
    # At temperature t a character p1/p2 times likelier than another is drawn (p1/p2)^(1/t) times as often: above
    # 100 even odds of a billion to one become 1.23 to one, so the text is noise whatever the model learned.
    temperature: float = _setting(
        0.8,
        "generate.sampling",
        "Sampling temperature: below 1 is safer and more repetitive, above 1 more surprising; 0 is greedy.",
        valid=Range(0, 100, words="0 (greedy) or positive, at most 100"),
    )
    top_k: int = _setting(
        0, "generate.sampling", "Sample only among the k most likely characters (0: all of them).", valid=Range(0, 1_000_000)
    )
    top_p: float = _setting(
        1.0,
        "generate.sampling",
        "Nucleus sampling: only among the most likely characters whose probabilities add up to p (1: all).",
        valid=Range(0, 1, low_included=False),
    )
    stop_at: str = _setting(
        "", "generate.sampling", "End a sample just after the first time it writes this text (e.g. a blank line: $'\\n\\n')."
    )
    allow_unknown: bool = _setting(
        False,
        "generate.sampling",
        "Read seed-text characters the model never saw as 'unknown character' instead of refusing them.",
    )

    # --- web: export_web.py, the model as a static web page ---
    out: str = _setting(
        "site",
        "web",
        "Folder export_web.py writes the web page into (index.html, its scripts, model.json and the weights); "
        "publish it on any static host.",
        valid=LocalPath(),
    )
    web_weights: str = _setting(
        "float32",
        "web",
        "Number type of the page's weights: float32 (as trained), float16 (half the download) or int8 (a quarter); "
        "the browser computes in float32 either way.",
        valid=OneOf(WEB_WEIGHTS),
    )

    @property
    def model(self) -> "ModelSettings":
        """The settings build_model needs, and nothing else."""
        return ModelSettings(**{f.name: getattr(self, f.name) for f in fields_in_groups("model")})

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


@dataclass(frozen=True)
class ModelSettings:
    """The "model" group of Config: what build_model needs besides the vocabulary size (checked by Config)."""

    embedding_dim: int
    rnn_units: int
    dropout: float


def fields_in_groups(*groups: str, skip: tuple[str, ...] = ()) -> list[dataclasses.Field]:
    """The Config fields of `groups` and their sub-groups ("data" holds "data.fetch"), in declaration order, less `skip`."""
    return [
        f
        for f in dataclasses.fields(Config)
        if any(f.metadata["group"] == group or f.metadata["group"].startswith(group + ".") for group in groups)
        and f.name not in skip
    ]


def names_in_groups(*groups: str) -> tuple[str, ...]:
    """The names of the fields of `groups` (see fields_in_groups)."""
    return tuple(f.name for f in fields_in_groups(*groups))


def _find_problems(cfg: Config) -> list[str]:
    """Each setting outside its valid values (see _setting), then what settings require of each other."""
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
    for f in dataclasses.fields(cfg):
        problem = f.metadata["valid"].problem(f.name, getattr(cfg, f.name)) if f.metadata["valid"] else None
        if problem:
            problems.append(problem)
    if cfg.stream_windows and cfg.window_stride:
        problems.append(
            f"--window_stride={cfg.window_stride} and --stream_windows={cfg.stream_windows} both say where windows start: "
            "windows in streams follow one another (give --window_stride=0)"
        )
    if cfg.window_stride > cfg.seq_len + 1:
        problems.append(f"--window_stride={cfg.window_stride} must be at most --seq_len + 1 = {cfg.seq_len + 1} (0: no overlap)")
    if cfg.steps and cfg.train_minutes:
        problems.append(
            f"--steps={cfg.steps} and --train_minutes={_number(cfg.train_minutes)} both say how long to train; "
            "give one (--train_minutes=0 or --steps=0 turns the other off)"
        )
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
