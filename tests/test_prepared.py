"""Prepared data: written once per corpus and settings, reused after, redone when anything it depends on changes."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from pipeline import datasets, prepared
from pipeline.datasets import make_datasets
from pipeline.vocab import build_vocabulary

LETTERS = "abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def files_config(tiny_config, tmp_path):
    """Three small books: a-lines, b-lines and c-lines, so every window tells which book it came from."""
    (tmp_path / "books").mkdir()
    for letter in "abc":
        (tmp_path / "books" / f"{letter}.txt").write_text(f"{letter * 30} {letter * 5}\n" * 100)
    return dataclasses.replace(tiny_config, corpus="files", files=str(tmp_path / "books" / "*.txt"))


@pytest.fixture
def count_reads(monkeypatch):
    """How many books were read from their source (downloaded or opened, decoded, cleaned)."""
    reads = []
    read_book = datasets._read_book
    monkeypatch.setattr(datasets, "_read_book", lambda cfg, book: reads.append(book) or read_book(cfg, book))
    return reads


def prepared_dirs(cfg):
    return sorted(p.name for p in datasets.prepared_root(cfg).iterdir() if p.is_dir())


def first_batch(data):
    return next(iter(data.train))[0].numpy().tolist()


def test_second_run_reads_the_prepared_shards_not_the_books(files_config, count_reads):
    first = make_datasets(files_config)
    assert len(count_reads) == 6  # three books counted for the vocabulary, then encoded
    assert len(list(first.prepared_dir.glob("train-*.tfrecord"))) == 3
    second = make_datasets(files_config)
    assert len(count_reads) == 6
    assert second.prepared_dir == first.prepared_dir
    assert second.vocabulary.chars == first.vocabulary.chars
    assert first_batch(second) == first_batch(first)


def test_a_given_vocabulary_needs_no_counting_pass(files_config, count_reads):
    data = make_datasets(files_config, vocabulary=build_vocabulary([LETTERS + " \n"]))
    assert len(count_reads) == 3
    assert data.vocabulary.size == 29


def test_changed_vocabulary_text_or_validation_fraction_prepare_anew(files_config, count_reads, tmp_path):
    make_datasets(files_config)
    make_datasets(files_config, vocabulary=build_vocabulary([LETTERS + " \n"]))
    make_datasets(dataclasses.replace(files_config, min_char_count=300))  # drops space and newline: other ids
    assert len(prepared_dirs(files_config)) == 3
    make_datasets(dataclasses.replace(files_config, validation_fraction=0.2))
    assert len(prepared_dirs(files_config)) == 4
    reads = len(count_reads)
    (tmp_path / "books" / "a.txt").write_text("a changed book\n" * 300)
    make_datasets(files_config)
    assert len(count_reads) == reads + 6 and len(prepared_dirs(files_config)) == 5


def test_a_killed_preparation_is_ignored_and_done_again(files_config, monkeypatch):
    read_book = datasets._read_book

    def dies_on_the_third_book(cfg, book):
        if book.name == "c.txt":
            raise KeyboardInterrupt
        return read_book(cfg, book)

    make_datasets(files_config)  # the counts are kept: the next preparation has a vocabulary at once
    data_dir = make_datasets(files_config).prepared_dir
    for path in data_dir.iterdir():
        path.unlink()
    data_dir.rmdir()
    monkeypatch.setattr(datasets, "_read_book", dies_on_the_third_book)
    with pytest.raises(KeyboardInterrupt):
        make_datasets(files_config)
    assert prepared_dirs(files_config) == []  # no half-written directory, not even a hidden one
    monkeypatch.setattr(datasets, "_read_book", read_book)
    assert make_datasets(files_config).num_books == 3


def test_staging_left_by_a_dead_process_is_removed(files_config):
    root = datasets.prepared_root(files_config)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = root / f".0123.partial-{dead.stdout.strip()}-abcd"
    abandoned.mkdir(parents=True)
    (abandoned / "train-00000-of-00001.tfrecord").write_bytes(b"half")
    alive = root / f".0123.partial-{os.getpid()}-abcd"
    alive.mkdir()
    make_datasets(files_config)
    assert not abandoned.exists() and alive.exists()


def test_damaged_prepared_data_is_noticed_and_prepared_again(files_config, count_reads):
    messages = []
    shard = sorted(make_datasets(files_config).prepared_dir.glob("train-*"))[0]
    shard.write_bytes(shard.read_bytes()[:-10])
    data = make_datasets(files_config, log=messages.append)
    assert any("is damaged" in m for m in messages)
    assert len(count_reads) == 6 + 3 and data.num_books == 3
    (data.prepared_dir / prepared.MANIFEST).write_text("{")
    assert make_datasets(files_config, log=messages.append).num_books == 3


def test_large_vocabularies_are_stored_as_uint16(files_config, tmp_path):
    many = "".join(chr(0x4E00 + i) for i in range(300))
    (tmp_path / "books" / "d.txt").write_text((many + "\n") * 20)
    data = make_datasets(files_config)
    assert data.vocabulary.id_dtype == np.uint16
    (record,) = [r for r in tf.data.TFRecordDataset(str(data.prepared_dir / "validation-00000-of-00001.tfrecord"))][3:]
    assert data.vocabulary.decode(prepared.read_book_ids(record, tf.uint16)).endswith(many[-30:] + "\n")


def test_batches_from_an_in_process_tf_data_service(files_config):
    dispatcher = tf.data.experimental.service.DispatchServer()
    worker = tf.data.experimental.service.WorkerServer(
        tf.data.experimental.service.WorkerConfig(dispatcher_address=dispatcher.target.split("://")[1])
    )
    try:
        data = make_datasets(dataclasses.replace(files_config, data_service_address=dispatcher.target))
        batches = [inputs for inputs, _ in data.train.take(3)]
        assert [b.shape for b in batches] == [(16, 32)] * 3
        local = make_datasets(files_config)
        assert batches[0].numpy().tolist() == first_batch(local)  # the same batches, made by the worker
    finally:
        worker.stop()
        dispatcher.stop()
