"""Prepared data: a corpus cleaned, encoded and split once, stored as TFRecord shards of ids, read in parallel after.

    <cache_dir>/prepared/<key>/manifest.json                         what the shards hold, checked on every read
    <cache_dir>/prepared/<key>/train-00003-of-00016.tfrecord         one record per book: its training ids
    <cache_dir>/prepared/<key>/validation-00000-of-00001.tfrecord    one record per book: its validation ids, in order
    <cache_dir>/prepared/counts-<key>.json                           character counts of the training text

A record is the book's ids as raw little-endian bytes (uint8, or uint16 for vocabularies of more than
255 characters). The key hashes everything that changes those ids: the corpus (each book or file,
files with size and modification time), the text settings, the validation fraction and the
vocabulary. Shards are written into a hidden staging directory that is renamed into place once
whole, so a run that was killed leaves nothing a later run would trust.
"""

import collections
import dataclasses
import hashlib
import json
import os
import pathlib
import secrets
import shutil
import time
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf

from files import write_file_atomically
from pipeline import streams, windows
from pipeline.vocab import Vocabulary, count_chars as count_chars_of, vocabulary_from_counts

FORMAT_VERSION = 1
MAX_TRAIN_SHARDS = 16  # enough files for parallel reads and for sharding by file across workers
MANIFEST = "manifest.json"
PROGRESS_EVERY_SECONDS = 10


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Books to prepare: what identifies them, and a way to read them one at a time."""

    identity: tuple  # JSON-able: the text settings and each book's id, or file with size and modification time
    num_books: int
    read_books: Callable[[], Iterator[tuple[str, str]]]  # (name, cleaned text) in a fixed order


@dataclasses.dataclass(frozen=True)
class Prepared:
    directory: pathlib.Path
    vocabulary: Vocabulary
    book_names: tuple[str, ...]
    train_chars: tuple[int, ...]  # per book
    validation_chars: tuple[int, ...]
    train_shards: tuple[str, ...]
    validation_shards: tuple[str, ...]

    @property
    def id_dtype(self) -> tf.DType:
        return tf.as_dtype(self.vocabulary.id_dtype)


def count_chars(corpus: Corpus, *, validation_fraction: float, root: pathlib.Path, log=print) -> collections.Counter:
    """How often each character occurs in the training parts of the books, counted once and kept in `root`."""
    path = pathlib.Path(root) / f"counts-{_hash([FORMAT_VERSION, corpus.identity, validation_fraction])}.json"
    try:
        return collections.Counter(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        pass  # not counted yet, or a damaged file: count again
    counts = collections.Counter()
    progress = _Progress(log, "counting characters", corpus.num_books)
    for _, text in corpus.read_books():
        train, _ = windows.split_train_validation(text, validation_fraction=validation_fraction)
        counts.update(count_chars_of(train))
        progress.book_done(len(text))
    write_file_atomically(path, json.dumps(counts, ensure_ascii=False).encode("utf-8"))
    return counts


def vocabulary_of(
    corpus: Corpus, *, validation_fraction: float, root: pathlib.Path, max_vocab: int, min_char_count: int, log=print
) -> Vocabulary:
    """The vocabulary of the corpus's training text (see vocab.vocabulary_from_counts); counted on first use only."""
    counts = count_chars(corpus, validation_fraction=validation_fraction, root=root, log=log)
    return vocabulary_from_counts(counts, max_vocab=max_vocab, min_char_count=min_char_count)


def prepare(
    corpus: Corpus, *, vocabulary: Vocabulary, validation_fraction: float, root: pathlib.Path, log=print
) -> Prepared:
    """The prepared data of `corpus` under `vocabulary`: read from `root` when whole, else written there first."""
    root = pathlib.Path(root)
    key = _hash([FORMAT_VERSION, corpus.identity, validation_fraction, vocabulary.chars])
    directory = root / key
    _remove_abandoned_staging(root)
    if directory.exists():
        try:
            return _read_manifest(directory, key=key, vocabulary=vocabulary)
        except (OSError, ValueError, KeyError, TypeError) as problem:
            log(f"prepared data at {directory} is damaged ({problem}); preparing it again")
            shutil.rmtree(directory, ignore_errors=True)
    staging = root / f".{key}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        _write_shards(corpus, vocabulary=vocabulary, validation_fraction=validation_fraction, key=key, staging=staging, log=log)
        try:
            staging.rename(directory)
        except OSError:  # another run prepared the same data meanwhile; theirs is as good
            if not directory.exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _read_manifest(directory, key=key, vocabulary=vocabulary)


def read_book_ids(records: tf.Tensor, id_dtype: tf.DType) -> tf.Tensor:
    """A record (or a vector of records) of raw little-endian ids -> the ids, of `id_dtype`."""
    return tf.io.decode_raw(records, id_dtype, little_endian=True)


def training_batches(
    prepared: Prepared,
    *,
    seq_len: int,
    window_stride: int,
    stream_windows: int,
    batch_size: int,
    shuffle_block: int,
    books_in_parallel: int,
    seed: int,
) -> tf.data.Dataset:
    """Endless int32 (input, target) batches [batch_size, seq_len]; each pass is shuffled anew from `seed` and holds
    exactly the full batches of its windows, so steps_per_epoch is exact.

    Per pass: shard files in a seeded order, `books_in_parallel` read at once; each book's windows cut
    and shuffled; windows of several books mixed in blocks (windows.mix_books); blocks rebatched.
    With stream_windows, each book's streams take the windows' place (cut at a seeded start, so every pass
    reads other windows), and batches hold their windows in order, with `carried` (pipeline/streams.py).
    The file list is the dataset's source, so tf.distribute's FILE auto-sharding gives each worker its own files.
    """
    files = tf.data.Dataset.from_tensor_slices(list(prepared.train_shards))
    files = files.shuffle(len(prepared.train_shards), seed=seed, reshuffle_each_iteration=True)
    file_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)  # one per file and pass

    def numbered_records(path, file_seed):
        """The shard's records, each with the seed that shuffles its windows: (this pass's file seed, position)."""
        records = tf.data.TFRecordDataset(path).enumerate()
        return records.map(lambda position, record: (tf.stack([file_seed, position]), record))

    def shuffled_windows(book_seed, record):
        ids = read_book_ids(record, prepared.id_dtype)
        if stream_windows:
            book = streams.cut_streams(ids, seq_len=seq_len, stream_windows=stream_windows, seed=book_seed)
            book = tf.reshape(book, [-1, stream_windows * (seq_len + 1)])  # one row per stream, for mix_books
        else:
            book = windows.cut_windows(ids, seq_len=seq_len, stride=window_stride)
        return book_seed, windows.shuffle_rows(book, book_seed)

    records = tf.data.Dataset.zip(files, file_seeds).interleave(
        numbered_records,
        cycle_length=min(len(prepared.train_shards), books_in_parallel),
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    book_windows = records.map(shuffled_windows, num_parallel_calls=tf.data.AUTOTUNE)
    if stream_windows:
        blocks = windows.mix_books(book_windows, books_in_parallel=books_in_parallel, shuffle_block=shuffle_block // stream_windows)
        batches = streams.make_stream_batches(blocks, batch_size=batch_size, stream_windows=stream_windows, window_len=seq_len + 1)
    else:
        blocks = windows.mix_books(book_windows, books_in_parallel=books_in_parallel, shuffle_block=shuffle_block)
        batches = windows.make_batches(blocks, batch_size=batch_size, drop_remainder=True)
    return batches.repeat()


def validation_batches(prepared: Prepared, *, seq_len: int, batch_size: int, stream_windows: int) -> tf.data.Dataset:
    """Non-overlapping windows of every book's validation part, in corpus order, each scored once: (input, target,
    weight) batches, the last one filled up with windows of weight 0 (windows.make_scoring_batches).
    With stream_windows, streams of windows instead, each window scored after the one before: (input, target,
    weight, carried) batches (streams.make_scoring_streams)."""
    book_ids = tf.data.TFRecordDataset(list(prepared.validation_shards)).map(lambda record: read_book_ids(record, prepared.id_dtype))
    return streams.scoring_batches(book_ids, prepared.validation_chars, seq_len=seq_len, batch_size=batch_size, stream_windows=stream_windows)


def _write_shards(corpus, *, vocabulary, validation_fraction, key, staging, log) -> None:
    staging.mkdir(parents=True)
    num_train_shards = max(1, min(corpus.num_books, MAX_TRAIN_SHARDS))
    train_names = [f"train-{i:05d}-of-{num_train_shards:05d}.tfrecord" for i in range(num_train_shards)]
    validation_names = ["validation-00000-of-00001.tfrecord"] if validation_fraction else []
    books = []
    progress = _Progress(log, "preparing", corpus.num_books)
    train_writers = [tf.io.TFRecordWriter(str(staging / name)) for name in train_names]
    validation_writers = [tf.io.TFRecordWriter(str(staging / name)) for name in validation_names]
    try:
        for index, (name, text) in enumerate(corpus.read_books()):
            ids = vocabulary.encode_text(text).astype(vocabulary.id_dtype.newbyteorder("<"))
            train, validation = windows.split_train_validation(ids, validation_fraction=validation_fraction)
            train_writers[index % num_train_shards].write(train.tobytes())
            for writer in validation_writers:
                writer.write(validation.tobytes())
            books.append({"name": name, "train_chars": len(train), "validation_chars": len(validation)})
            progress.book_done(len(text))
    finally:
        for writer in train_writers + validation_writers:
            writer.close()
    shards = {name: (staging / name).stat().st_size for name in train_names + validation_names}
    manifest = {
        "format_version": FORMAT_VERSION,
        "key": key,
        "identity": corpus.identity,
        "chars": list(vocabulary.chars),
        "id_dtype": vocabulary.id_dtype.name,
        "train_shards": train_names,
        "validation_shards": validation_names,
        "shard_bytes": shards,
        "books": books,
    }
    write_file_atomically(staging / MANIFEST, json.dumps(manifest, ensure_ascii=False).encode("utf-8"))


def _read_manifest(directory: pathlib.Path, *, key: str, vocabulary: Vocabulary) -> Prepared:
    """The prepared data in `directory`, after checking that it is whole and what `key` and `vocabulary` ask for."""
    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    if manifest["format_version"] != FORMAT_VERSION or manifest["key"] != key:
        raise ValueError("it was written by another version or for other settings")
    if tuple(manifest["chars"]) != vocabulary.chars or manifest["id_dtype"] != vocabulary.id_dtype.name:
        raise ValueError("its vocabulary differs")
    for name, size in manifest["shard_bytes"].items():
        if (directory / name).stat().st_size != size:
            raise ValueError(f"{name} has {(directory / name).stat().st_size:,} bytes, not {size:,}")
    books = manifest["books"]
    return Prepared(
        directory=directory,
        vocabulary=vocabulary,
        book_names=tuple(b["name"] for b in books),
        train_chars=tuple(int(b["train_chars"]) for b in books),
        validation_chars=tuple(int(b["validation_chars"]) for b in books),
        train_shards=tuple(str(directory / name) for name in manifest["train_shards"]),
        validation_shards=tuple(str(directory / name) for name in manifest["validation_shards"]),
    )


def _remove_abandoned_staging(root: pathlib.Path) -> None:
    """Deletes staging directories of runs that were killed (their process is gone); live ones are left alone."""
    for staging in root.glob(".*.partial-*"):
        try:
            pid = int(staging.name.split(".partial-")[1].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(staging, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            pass


def _hash(identity) -> str:
    return hashlib.sha256(json.dumps(identity, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()[:20]


class _Progress:
    """'preparing: 1,200/28,602 books, 480,112,344 characters, 6.1M chars/s' every PROGRESS_EVERY_SECONDS."""

    def __init__(self, log, what: str, num_books: int):
        self.log, self.what, self.num_books = log, what, num_books
        self.books = self.chars = 0
        self.start = self.last = time.monotonic()

    def book_done(self, num_chars: int) -> None:
        self.books += 1
        self.chars += num_chars
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_SECONDS or (self.books == self.num_books and now - self.start >= PROGRESS_EVERY_SECONDS):
            self.last = now
            self.log(
                f"{self.what}: {self.books:,}/{self.num_books:,} books, {self.chars:,} characters, "
                f"{self.chars / (now - self.start) / 1e6:.1f}M chars/s"
            )
