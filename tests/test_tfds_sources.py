"""--corpus=tfds:NAME, offline: tensorflow_datasets' mock_data stands in for the downloaded dataset."""

import dataclasses

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from errors import UserError
from pipeline.datasets import make_datasets, read_books


def mocked(texts: dict):
    """mock_data whose examples are `texts` (feature -> list of values) instead of random strings."""

    def as_dataset(self, *args, **kwargs):
        return tf.data.Dataset.from_tensor_slices(texts)

    return tfds.testing.mock_data(as_dataset_fn=as_dataset)


@pytest.fixture
def tfds_config(tiny_config, tmp_path):
    return dataclasses.replace(tiny_config, tfds_data_dir=str(tmp_path / "tfds"))


@pytest.mark.smoke
def test_tiny_shakespeare_is_one_book(tfds_config, corpora_dir):
    shakespeare = (corpora_dir / "tinyshakespeare" / "input.txt").read_text()[:20000]
    cfg = dataclasses.replace(tfds_config, corpus="tfds:tiny_shakespeare")
    with mocked({"text": [shakespeare]}):
        data = make_datasets(cfg)
        (book,) = read_books(cfg)
    assert data.num_books == 1
    assert book.name == "tfds:tiny_shakespeare train example 0" and book.text.startswith("First Citizen:")
    assert data.train_chars + data.validation_chars == len(book.text)
    inputs, targets = next(iter(data.train))
    assert inputs.shape == (16, 32)
    assert data.vocabulary.decode(inputs[0]) in book.text


def test_pg19_examples_are_books_named_by_title(tfds_config):
    titles = ["Emma", "Persuasion", "Sanditon"]
    book_texts = [f"{title} by Jane Austen.\r\n" * 60 for title in titles]
    cfg = dataclasses.replace(tfds_config, corpus="tfds:pg19")
    with mocked({"book_text": book_texts, "book_title": titles, "book_id": [1, 2, 3]}):
        data = make_datasets(cfg)
        books = list(read_books(cfg))
    assert data.num_books == 3
    assert [b.name for b in books] == [f"tfds:pg19 train example {i}: {t}" for i, t in enumerate(titles)]
    assert "\r" not in data.vocabulary.chars  # cleaned like every other book
    assert len(list(data.prepared_dir.glob("train-*.tfrecord"))) == 3


def test_unknown_dataset_is_a_clear_error(tfds_config):
    with pytest.raises(UserError, match="has no dataset 'no_such_books'"):
        make_datasets(dataclasses.replace(tfds_config, corpus="tfds:no_such_books"))
