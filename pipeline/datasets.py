"""The input pipeline's top: Config -> cleaned books -> vocabulary -> training and validation batches.

This is the one pipeline function that reads Config; everything it calls takes explicit arguments.
"""

import collections
import dataclasses
import pathlib

import tensorflow as tf

from config import Config
from errors import UserError
from pipeline import sources, text, windows
from pipeline.vocab import Vocabulary, build_vocabulary

# Windows of this many books alternate before the shuffle buffer (see windows.make_windows).
BOOKS_IN_PARALLEL = 16


@dataclasses.dataclass(frozen=True)
class Book:
    name: str  # "Gutenberg book 84" or a file path, for messages
    text: str  # cleaned text


@dataclasses.dataclass(frozen=True)
class Datasets:
    train: tf.data.Dataset  # endless (inputs, targets), each int32 [batch_size, seq_len]
    validation: tf.data.Dataset | None  # one pass, batches of up to batch_size; None without validation text
    vocabulary: Vocabulary
    steps_per_epoch: int  # full training batches in one pass over the training text
    num_books: int
    train_chars: int
    validation_chars: int


@dataclasses.dataclass(frozen=True)
class EvaluationBook:
    name: str
    batches: tf.data.Dataset  # (inputs, targets) int32 [<= batch_size, seq_len], in text order, each window once
    unknown_chars: collections.Counter  # characters outside the vocabulary: they count as the unknown id


def load_books(
    *,
    corpus: str,
    books: tuple[int, ...],
    files: str,
    gutenberg_mirror: str,
    cache_dir: pathlib.Path,
    download_options: dict | None = None,
    cleaning_options: dict | None = None,
) -> list[Book]:
    """The cleaned text of every book of the corpus, in a fixed order.

    `download_options`: keyword arguments of sources.fetch_gutenberg_books (workers, skip_missing, timeout);
    `cleaning_options`: those of text.clean_book_text (lowercase, collapse_whitespace).
    """
    if corpus == "gutenberg":
        fetched = sources.fetch_gutenberg_books(books, mirror=gutenberg_mirror, cache_dir=cache_dir, **(download_options or {}))
        named_bytes = [(f"Gutenberg book {book_id}", path.read_bytes()) for book_id, path in fetched]
    else:
        named_bytes = [(str(path), sources.load_text_file(path)) for path in sources.find_text_files(files)]
    return [Book(name, text.clean_book_text(raw, name=name, **(cleaning_options or {}))) for name, raw in named_bytes]


def make_datasets(cfg: Config, *, vocabulary: Vocabulary | None = None) -> Datasets:
    """Training and validation batches for `cfg`; the vocabulary is built from the training text unless given."""
    books = _load_books_of(cfg)
    splits = [windows.split_train_validation(b.text, validation_fraction=cfg.validation_fraction) for b in books]
    train_texts = [train for train, _ in splits]
    validation_texts = [validation for _, validation in splits]
    if vocabulary is None:
        vocabulary = build_vocabulary(train_texts)

    train_windows = sum(windows.count_windows(len(t), seq_len=cfg.seq_len) for t in train_texts)
    if train_windows < cfg.batch_size:
        raise UserError(
            f"the training text ({sum(map(len, train_texts)):,} characters) makes {train_windows:,} windows of "
            f"--seq_len + 1 = {cfg.seq_len + 1} characters, fewer than one batch (--batch_size={cfg.batch_size}); "
            "add text or lower --batch_size or --seq_len"
        )
    validation_windows = sum(windows.count_windows(len(t), seq_len=cfg.seq_len) for t in validation_texts)

    train_pairs = _make_pairs(train_texts, vocabulary, seq_len=cfg.seq_len)
    train = windows.make_training_batches(
        train_pairs, batch_size=cfg.batch_size, shuffle_buffer=cfg.shuffle_buffer, seed=cfg.seed
    )
    validation = None
    if validation_windows:
        validation_pairs = _make_pairs(validation_texts, vocabulary, seq_len=cfg.seq_len)
        validation = windows.make_evaluation_batches(validation_pairs, batch_size=cfg.batch_size)
    return Datasets(
        train=train,
        validation=validation,
        vocabulary=vocabulary,
        steps_per_epoch=train_windows // cfg.batch_size,
        num_books=len(books),
        train_chars=sum(map(len, train_texts)),
        validation_chars=sum(map(len, validation_texts)),
    )


def make_evaluation_books(cfg: Config, *, vocabulary: Vocabulary) -> list[EvaluationBook]:
    """Every book of `cfg`'s corpus, whole, as in-order batches of seq_len + 1 windows (as validation scores them)."""
    evaluation_books = []
    for book in _load_books_of(cfg):
        if windows.count_windows(len(book.text), seq_len=cfg.seq_len) == 0:
            raise UserError(f"{book.name} is shorter than one window of --seq_len + 1 = {cfg.seq_len + 1} characters")
        batches = windows.make_evaluation_batches(
            _make_pairs([book.text], vocabulary, seq_len=cfg.seq_len), batch_size=cfg.batch_size
        )
        unknown = vocabulary.count_unknown_chars(book.text)
        evaluation_books.append(EvaluationBook(name=book.name, batches=batches, unknown_chars=unknown))
    return evaluation_books


def _load_books_of(cfg: Config) -> list[Book]:
    return load_books(
        corpus=cfg.corpus,
        books=cfg.books,
        files=cfg.files,
        gutenberg_mirror=cfg.gutenberg_mirror,
        cache_dir=pathlib.Path(cfg.cache_dir) if cfg.cache_dir else sources.default_cache_dir(),
        download_options=dict(workers=cfg.download_workers, skip_missing=cfg.skip_missing_books, timeout=cfg.download_timeout),
        cleaning_options=dict(lowercase=cfg.lowercase, collapse_whitespace=cfg.collapse_whitespace),
    )


def _make_pairs(texts: list[str], vocabulary: Vocabulary, *, seq_len: int) -> tf.data.Dataset:
    """Cleaned texts -> (input, target) pairs, each int32 [seq_len]."""
    book_ids = tf.data.Dataset.from_tensor_slices(tf.constant(texts, dtype=tf.string)).map(vocabulary.encode)
    book_windows = windows.make_windows(book_ids, seq_len=seq_len, books_in_parallel=BOOKS_IN_PARALLEL)
    return book_windows.map(windows.split_input_target, num_parallel_calls=tf.data.AUTOTUNE)
