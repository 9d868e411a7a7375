import dataclasses

import pytest

from errors import UserError
from pipeline.datasets import load_books, make_datasets


def test_batches_of_shifted_windows_from_a_real_book(tiny_config):
    data = make_datasets(tiny_config)

    inputs, targets = next(iter(data.train))
    assert inputs.shape == targets.shape == (16, 32)
    assert inputs.dtype.name == targets.dtype.name == "int32"
    assert inputs[:, 1:].numpy().tolist() == targets[:, :-1].numpy().tolist()
    assert data.num_books == 1
    assert data.steps_per_epoch == data.train_chars // 33 // 16
    assert "A" in data.vocabulary.chars and "\n" in data.vocabulary.chars


def test_training_and_validation_windows_never_share_text(tiny_config):
    cfg = dataclasses.replace(tiny_config, validation_fraction=0.1)
    data = make_datasets(cfg)
    (book,) = load_books(
        corpus="gutenberg", books=(11,), files="", gutenberg_mirror=cfg.gutenberg_mirror, cache_dir=cfg.cache_dir
    )
    cut = len(book.text) - int(len(book.text) * 0.1)
    train_text, validation_text = book.text[:cut], book.text[cut:]

    decode = data.vocabulary.decode
    validation_windows = [decode(x[i]) + decode(y[i, -1:]) for x, y in data.validation for i in range(len(x))]
    assert len(validation_windows) == len(validation_text) // 33
    assert all(window in validation_text for window in validation_windows)
    assert "".join(validation_windows) == validation_text[: len(validation_windows) * 33]
    inputs, targets = next(iter(data.train))
    assert all(decode(x) + decode(y[-1:]) in train_text for x, y in zip(inputs, targets))


def test_users_own_text_files(tiny_config, tmp_path):
    (tmp_path / "poems").mkdir()
    (tmp_path / "poems" / "one.txt").write_text("tyger tyger burning bright\n" * 40)
    (tmp_path / "poems" / "two.txt").write_bytes(b"\xef\xbb\xbf" + b"in the forests of the night\r\n" * 40)
    cfg = dataclasses.replace(tiny_config, corpus="files", files=str(tmp_path / "poems" / "*.txt"), batch_size=4)
    data = make_datasets(cfg)
    assert data.num_books == 2
    assert "\r" not in data.vocabulary.chars and "\ufeff" not in data.vocabulary.chars
    assert set(data.vocabulary.chars) == set("tyger burnin bright\nthe forests of night")


def test_corpus_smaller_than_one_batch_says_what_to_change(tiny_config, tmp_path):
    (tmp_path / "short.txt").write_text("far too short\n" * 10)
    cfg = dataclasses.replace(tiny_config, corpus="files", files=str(tmp_path / "short.txt"))
    with pytest.raises(UserError, match="fewer than one batch.*lower --batch_size or --seq_len"):
        make_datasets(cfg)


def test_empty_file_is_named(tiny_config, tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    cfg = dataclasses.replace(tiny_config, corpus="files", files=str(tmp_path / "empty.txt"))
    with pytest.raises(UserError, match="empty.txt holds no text"):
        make_datasets(cfg)


def test_cleaning_options_reach_the_vocabulary(tiny_config):
    plain = make_datasets(tiny_config).vocabulary.chars
    cleaned = make_datasets(dataclasses.replace(tiny_config, lowercase=True, collapse_whitespace=True)).vocabulary.chars
    assert "A" in plain and not any(c.isupper() for c in cleaned)


def test_books_that_cannot_be_fetched_stop_the_run_unless_skipped(tiny_config):
    cfg = dataclasses.replace(tiny_config, books=(11, 999999))
    with pytest.raises(UserError, match="1 of 2 Gutenberg books could not be fetched:\n  Gutenberg book 999999 is not in"):
        make_datasets(cfg)
    assert make_datasets(dataclasses.replace(cfg, skip_missing_books=True)).num_books == 1
