"""The input pipeline's top: Config -> corpus -> vocabulary -> prepared shards -> training and validation batches.

This is the one pipeline function that reads Config; everything it calls takes explicit arguments.
Books are read one at a time, and only while preparing (pipeline/prepared.py); training reads the shards.
"""

import collections
import dataclasses
import pathlib
from collections.abc import Iterator

import tensorflow as tf

from config import Config, names_in_groups
from errors import UserError
from pipeline import prepared, sources, streams, text, tfds_sources, windows
from pipeline.notes import CappedNotes
from pipeline.vocab import Vocabulary

# Config fields that change the cleaned text of a corpus, hence the prepared ids: all of them go into the
# prepared data's key (with each file's size and modification time, the vocabulary and validation_fraction).
TEXT_SETTINGS = names_in_groups("data.text")

# Books whose windows are mixed at any time: shard files read at once, and books in a shuffled block.
BOOKS_IN_PARALLEL = 16

# Books named one by one when cleaning removed much of them (text.CleanedBook.removal_note); the rest are counted.
CLEANING_NOTES_SHOWN = 10


@dataclasses.dataclass(frozen=True)
class Book:
    name: str  # "Gutenberg book 84" or a file path, for messages
    text: str  # cleaned text
    cleaning_note: str | None = None  # said when removing Gutenberg headers and licences took much of the file


@dataclasses.dataclass(frozen=True)
class Datasets:
    train: tf.data.Dataset  # endless (inputs, targets) int32 [batch_size, seq_len], and carried [batch_size] in streams
    validation: tf.data.Dataset | None  # one pass, (inputs, targets, weights[, carried]) [batch_size, ...]; None without validation text
    vocabulary: Vocabulary
    steps_per_epoch: int  # full training batches in one pass over the training text
    num_books: int
    train_chars: int
    validation_chars: int
    prepared_dir: pathlib.Path


@dataclasses.dataclass(frozen=True)
class EvaluationBook:
    name: str
    batches: tf.data.Dataset  # (inputs, targets, weights[, carried]) [batch_size, ...], in text order, each window once (weight 1)
    unknown_chars: collections.Counter  # characters outside the vocabulary: they count as the unknown id


def make_datasets(cfg: Config, *, vocabulary: Vocabulary | None = None, log=print) -> Datasets:
    """Training and validation batches for `cfg`, from prepared data (prepared first if needed).

    The vocabulary is counted from the training text (--max_vocab, --min_char_count) unless given.
    """
    corpus = make_corpus(cfg)
    root = prepared_root(cfg)
    if vocabulary is None:
        vocabulary = prepared.vocabulary_of(
            corpus,
            validation_fraction=cfg.validation_fraction,
            root=root,
            max_vocab=cfg.max_vocab,
            min_char_count=cfg.min_char_count,
            log=log,
        )
    data = prepared.prepare(corpus, vocabulary=vocabulary, validation_fraction=cfg.validation_fraction, root=root, log=log)

    if cfg.stream_windows:
        train_rows = sum(
            streams.count_streams(n, seq_len=cfg.seq_len, stream_windows=cfg.stream_windows) for n in data.train_chars
        )
        rows = f"streams of --stream_windows x --seq_len + 1 = {cfg.stream_windows * cfg.seq_len + 1:,} characters"
        fix = "add text or lower --batch_size, --stream_windows or --seq_len"
    else:
        train_rows = sum(windows.count_windows(n, seq_len=cfg.seq_len, stride=cfg.window_stride) for n in data.train_chars)
        rows = f"windows of --seq_len + 1 = {cfg.seq_len + 1} characters"
        fix = "add text or lower --batch_size or --seq_len"
    if train_rows < cfg.batch_size:
        raise UserError(
            f"the training text ({sum(data.train_chars):,} characters) makes {train_rows:,} {rows}, "
            f"fewer than one batch (--batch_size={cfg.batch_size}); {fix}"
        )
    train = prepared.training_batches(
        data,
        seq_len=cfg.seq_len,
        window_stride=cfg.window_stride,
        stream_windows=cfg.stream_windows,
        batch_size=cfg.batch_size,
        shuffle_block=cfg.shuffle_buffer,
        books_in_parallel=BOOKS_IN_PARALLEL,
        seed=cfg.seed,
    )
    validation = None
    if any(windows.count_windows(n, seq_len=cfg.seq_len) for n in data.validation_chars):
        validation = prepared.validation_batches(
            data, seq_len=cfg.seq_len, batch_size=cfg.batch_size, stream_windows=cfg.stream_windows
        )
        validation = validation.prefetch(tf.data.AUTOTUNE)
    return Datasets(
        train=_run_options(train, cfg),
        validation=validation,
        vocabulary=vocabulary,
        steps_per_epoch=train_rows // cfg.batch_size * max(1, cfg.stream_windows),
        num_books=len(data.book_names),
        train_chars=sum(data.train_chars),
        validation_chars=sum(data.validation_chars),
        prepared_dir=data.directory,
    )


def make_evaluation_books(cfg: Config, *, vocabulary: Vocabulary) -> Iterator[EvaluationBook]:
    """Every book of `cfg`'s corpus, whole, one at a time, as in-order batches of seq_len + 1 windows, or streams of
    them (--stream_windows), as validation scores them."""
    for book in read_books(cfg):
        ids = vocabulary.encode_text(book.text)
        num_windows = windows.count_windows(len(ids), seq_len=cfg.seq_len)
        if num_windows == 0:
            raise UserError(
                f"{book.name} is shorter than one window of --seq_len + 1 = {cfg.seq_len + 1} characters; "
                "leave it out or lower --seq_len"
            )
        batches = streams.scoring_batches(
            tf.data.Dataset.from_tensors(tf.constant(ids)),
            [len(ids)],
            seq_len=cfg.seq_len,
            batch_size=cfg.batch_size,
            stream_windows=cfg.stream_windows,
        )
        unknown = vocabulary.count_unknown_chars(book.text)
        yield EvaluationBook(name=book.name, batches=batches, unknown_chars=unknown)


def make_corpus(cfg: Config) -> prepared.Corpus:
    """The books of `cfg`, named for the prepared data's key, to be read one at a time.

    A book that cleaning cut by more than a small share is noted on stderr the first time it is read
    (the vocabulary and the prepared data read the corpus twice): the first CLEANING_NOTES_SHOWN books by
    name, then one line counting the others.
    """
    notes = CappedNotes(
        limit=CLEANING_NOTES_SHOWN,
        rest=f"note: and {{count:,}} more books kept less than {1 - text.MAX_QUIET_REMOVAL:.0%} of their characters "
        "after removing Gutenberg headers and licences",
    )

    def noted(book: Book) -> tuple[str, str]:
        if book.cleaning_note:
            notes.add(book.name, book.cleaning_note)
        return book.name, book.text

    settings = [[name, getattr(cfg, name)] for name in TEXT_SETTINGS]
    if cfg.corpus.startswith("tfds:"):
        dataset = cfg.corpus.removeprefix("tfds:")
        identity, num_books = tfds_sources.describe(dataset, split=cfg.tfds_split, data_dir=cfg.tfds_data_dir)

        def read_tfds_books():
            for name, raw in tfds_sources.read_texts(dataset, split=cfg.tfds_split, data_dir=cfg.tfds_data_dir):
                yield noted(_clean(cfg, name, raw))
            notes.flush()

        return prepared.Corpus(identity=tuple(settings + [identity]), num_books=num_books, read_books=read_tfds_books)

    if cfg.corpus == "gutenberg":
        books = list(cfg.books)
        identity = settings
    else:
        books = sources.find_text_files(cfg.files)
        identity = settings + [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in books]

    def read_listed_books():
        # Gutenberg books not in the cache yet are downloaded together, up front, only when the books are read.
        listed = _fetch_gutenberg_books(cfg, books) if cfg.corpus == "gutenberg" else books
        for book in listed:
            yield noted(_read_book(cfg, book))
        notes.flush()

    return prepared.Corpus(identity=tuple(identity), num_books=len(books), read_books=read_listed_books)


def read_books(cfg: Config) -> Iterator[Book]:
    """The cleaned text of every book of the corpus, one at a time, in a fixed order."""
    for name, cleaned in make_corpus(cfg).read_books():
        yield Book(name, cleaned)


def prepared_root(cfg: Config) -> pathlib.Path:
    return (pathlib.Path(cfg.cache_dir) if cfg.cache_dir else sources.default_cache_dir()) / "prepared"


def _fetch_gutenberg_books(cfg: Config, book_ids: list[int]) -> list[tuple[int, pathlib.Path]]:
    return sources.fetch_gutenberg_books(
        book_ids,
        mirror=cfg.gutenberg_mirror,
        cache_dir=pathlib.Path(cfg.cache_dir) if cfg.cache_dir else sources.default_cache_dir(),
        workers=cfg.download_workers,
        skip_missing=cfg.skip_missing_books,
        timeout=cfg.download_timeout,
    )


def _read_book(cfg: Config, book) -> Book:
    """One book of the corpus (a fetched Gutenberg book's (id, cached path), or a file path), decoded and cleaned."""
    if cfg.corpus == "gutenberg":
        book_id, path = book
        return _clean(cfg, f"Gutenberg book {book_id}", path.read_bytes())
    return _clean(cfg, str(book), sources.load_text_file(book))


def _clean(cfg: Config, name: str, raw: bytes) -> Book:
    cleaned = text.clean_book(raw, name=name, lowercase=cfg.lowercase, collapse_whitespace=cfg.collapse_whitespace)
    return Book(name, cleaned.text, cleaning_note=cleaned.removal_note(name))


def worker_batches(
    train: tf.data.Dataset, *, first_step: int, worker: int, num_workers: int, replicas_per_worker: int
) -> tf.data.Dataset:
    """One worker's part of the training batches from step `first_step` on: (input, target[, carried]) per-replica batches.

    Worker w of n keeps rows [w * b/n, (w + 1) * b/n) of every global batch of b rows, split among its
    replicas in order. So the replicas together train on exactly the batches that one device would, in
    the same order, however many workers and replicas there are; and a run resumed at step s (by any number
    of workers) continues the very same stream, s global batches in. Every worker runs the whole input
    pipeline for this, which costs little: it makes batches over a thousand times faster than training
    uses them (bench/README.md). Global batches [8, ...], 2 workers of 2 replicas: worker 1 yields rows 4-5, then 6-7.
    A replica gets the same rows of every batch, so in streams (--stream_windows) it reads the same streams on.
    """
    rows = train.element_spec[0].shape[0] // num_workers
    first, end = worker * rows, (worker + 1) * rows
    mine = train.skip(first_step).map(lambda *batch: tuple(part[first:end] for part in batch))
    return mine.rebatch(rows // replicas_per_worker, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def distribute_by_rows(batches: tf.data.Dataset, strategy: tf.distribute.Strategy, *, first_step: int = 0):
    """`batches` from `first_step` on, distributed by rows: each worker's share split among its replicas (worker_batches).

    Training batches are a fixed function of --seed, so skipping those already trained on resumes the stream.
    Validation is distributed the same way: each replica scores the same rows of every batch, so in streams
    (--stream_windows) each carries its own streams' state from batch to batch, as in training.
    """

    def this_workers_batches(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return worker_batches(
            batches,
            first_step=first_step,
            worker=context.input_pipeline_id,
            num_workers=context.num_input_pipelines,
            replicas_per_worker=context.num_replicas_in_sync // context.num_input_pipelines,
        )

    return strategy.distribute_datasets_from_function(this_workers_batches)


def _run_options(train: tf.data.Dataset, cfg: Config) -> tf.data.Dataset:
    """Options for running the training batches: order (--deterministic), the tf.data service."""
    options = tf.data.Options()
    options.deterministic = cfg.deterministic
    # worker_batches gives each worker its share; tf.distribute must not shard the data again.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    train = train.with_options(options)
    if cfg.data_service_address:
        train = train.apply(
            tf.data.experimental.service.distribute(processing_mode="parallel_epochs", service=cfg.data_service_address)
        )
    return train.prefetch(tf.data.AUTOTUNE)
