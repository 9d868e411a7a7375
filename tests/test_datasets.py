import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from conftest import gutenberg_file
from errors import UserError
from pipeline.datasets import TEXT_SETTINGS, make_corpus, make_datasets, read_books, worker_batches


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
    (book,) = read_books(cfg)
    cut = len(book.text) - int(len(book.text) * 0.1)
    train_text, validation_text = book.text[:cut], book.text[cut:]

    decode = data.vocabulary.decode
    batches = list(data.validation)
    assert {tuple(x.shape) for x, _, _ in batches} == {(16, 32)}  # all full: the last one is filled up with weight 0
    validation_windows = [decode(x[i]) + decode(y[i, -1:]) for x, y, w in batches for i in range(len(x)) if w[i] == 1]
    assert sum(float(w.numpy().sum()) for _, _, w in batches) == len(validation_windows) > 16 * (len(batches) - 1)
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


def test_every_text_setting_is_part_of_the_prepared_datas_key(tiny_config):
    identity = make_corpus(tiny_config).identity
    assert [name for name, _ in identity[: len(TEXT_SETTINGS)]] == list(TEXT_SETTINGS)
    assert make_corpus(dataclasses.replace(tiny_config, books=(11, 84))).identity != identity


def test_window_stride_overlaps_training_windows_and_keeps_steps_per_epoch_exact(tiny_config):
    cfg = dataclasses.replace(tiny_config, window_stride=11)
    data = make_datasets(cfg)
    (book,) = read_books(cfg)
    train_text = book.text[: len(book.text) - int(len(book.text) * cfg.validation_fraction)]
    assert data.steps_per_epoch == ((len(train_text) - 33) // 11 + 1) // 16
    decode = data.vocabulary.decode
    inputs, targets = next(iter(data.train))
    for x, y in zip(inputs, targets):  # every window starts a multiple of the stride into the book
        window = decode(x) + decode(y[-1:])
        starts = [i for i in range(len(train_text)) if train_text.startswith(window, i)]
        assert any(start % 11 == 0 for start in starts), starts
    epoch = data.train.take(data.steps_per_epoch)
    assert sum(1 for _ in epoch) == data.steps_per_epoch


def test_in_streams_each_row_reads_on_where_its_last_window_ended(tiny_config):
    cfg = dataclasses.replace(tiny_config, stream_windows=4)
    data = make_datasets(cfg)
    (book,) = read_books(cfg)
    train_text = book.text[: len(book.text) - int(len(book.text) * cfg.validation_fraction)]
    assert data.steps_per_epoch == (len(train_text) - 1) // (4 * 32) // 16 * 4
    decode = data.vocabulary.decode
    batches = list(data.train.take(2 * data.steps_per_epoch))
    assert [carried.numpy().tolist() for _, _, carried in batches[:5]] == [[0] * 16] + [[1] * 16] * 3 + [[0] * 16]
    for (inputs, targets, _), (next_inputs, _, carried) in zip(batches, batches[1:]):
        for row in range(16):
            if carried[row]:  # this row's stream goes on: its input starts with the last window's last target
                read_on = decode(inputs[row]) + decode(next_inputs[row])
                assert read_on in train_text and targets[row, -1] == next_inputs[row, 0]
    first_pass, second_pass = (
        {decode(inputs[row]) for inputs, _, _ in half for row in range(16)}
        for half in (batches[: data.steps_per_epoch], batches[data.steps_per_epoch :])
    )
    assert len(first_pass) == 16 * data.steps_per_epoch  # every window once per pass
    assert first_pass != second_pass  # the next pass cuts its streams elsewhere


def test_in_streams_validation_scores_every_window_once_reading_on_from_the_last(tiny_config):
    cfg = dataclasses.replace(tiny_config, stream_windows=4)
    data = make_datasets(cfg)
    (book,) = read_books(cfg)
    validation_text = book.text[len(book.text) - int(len(book.text) * cfg.validation_fraction) :]
    decode = data.vocabulary.decode
    scored = [
        decode(inputs[row]) for inputs, _, weights, _ in data.validation for row in range(16) if weights[row] == 1
    ]
    assert sorted(scored) == sorted(validation_text[i : i + 32] for i in range(0, len(validation_text) - 32, 32))


def test_a_corpus_shorter_than_one_batch_of_streams_says_what_to_change(tiny_config):
    with pytest.raises(UserError, match="streams of --stream_windows x --seq_len.*lower --batch_size, --stream_windows or --seq_len"):
        make_datasets(dataclasses.replace(tiny_config, stream_windows=400))


def test_the_same_seed_gives_the_same_batches_and_every_pass_is_shuffled_anew(tiny_config):
    def first_inputs(seed, *, take):
        data = make_datasets(dataclasses.replace(tiny_config, seed=seed))
        return [inputs.numpy().tolist() for inputs, _ in data.train.take(take)], data.steps_per_epoch

    batches, steps_per_epoch = first_inputs(1, take=3)
    assert batches == first_inputs(1, take=3)[0]
    assert batches != first_inputs(2, take=3)[0]
    two_passes, _ = first_inputs(1, take=2 * steps_per_epoch)
    assert two_passes[:3] == batches
    assert two_passes[steps_per_epoch : steps_per_epoch + 3] != batches


def test_nondeterministic_order_still_delivers_full_batches(tiny_config):
    data = make_datasets(dataclasses.replace(tiny_config, deterministic=False))
    assert data.train.options().deterministic is False
    assert all(inputs.shape == (16, 32) for inputs, _ in data.train.take(5))


def test_every_pass_holds_exactly_steps_per_epoch_batches_of_distinct_windows(tiny_config, tmp_path):
    # Five windows, batches of two: each pass is two batches of four different windows, and the fifth
    # window is dropped rather than carried into the next pass's batches.
    (tmp_path / "five.txt").write_text("".join(letter * 32 + "\n" for letter in "abcde"))
    cfg = dataclasses.replace(
        tiny_config, corpus="files", files=str(tmp_path / "five.txt"), validation_fraction=0.0, batch_size=2
    )
    data = make_datasets(cfg)
    assert data.steps_per_epoch == 2
    first_letters = [data.vocabulary.decode(inputs[:, 0]) for inputs, _ in data.train.take(20)]
    for one_pass in range(10):
        letters = first_letters[2 * one_pass] + first_letters[2 * one_pass + 1]
        assert len(set(letters)) == 4, first_letters


def cleaning_notes(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]


def test_a_file_that_cleaning_cuts_by_over_a_tenth_is_noted_once_per_run(tiny_config, tmp_path, capsys):
    (tmp_path / "texts").mkdir()
    short = gutenberg_file("Tyger", "tyger tyger burning bright\n" * 40)  # 1,080 characters of poem
    (tmp_path / "texts" / "short.txt").write_text(short)
    (tmp_path / "texts" / "long.txt").write_text(gutenberg_file("Forests", "in the forests of the night\n" * 400))
    (tmp_path / "texts" / "plain.txt").write_text("what immortal hand or eye\n" * 40)
    cfg = dataclasses.replace(tiny_config, corpus="files", files=str(tmp_path / "texts" / "*.txt"), batch_size=4)

    data = make_datasets(cfg)  # reads every file twice: counting the vocabulary, then preparing

    assert data.num_books == 3
    assert len(short) == 1552
    assert cleaning_notes(capsys) == [
        f"note: {tmp_path / 'texts' / 'short.txt'}: kept 1,080 of 1,552 characters (69%) "
        "after removing Gutenberg headers and licences"
    ]  # long.txt lost 4% of its 11,680 characters and plain.txt nothing: no note


def test_many_cut_books_are_named_up_to_ten_then_counted(tiny_config, tmp_path, capsys):
    (tmp_path / "texts").mkdir()
    for number in range(13):
        poem = gutenberg_file(f"Poem {number}", "a short poem\n" * 20)  # the header and licence are 65% of it
        (tmp_path / "texts" / f"{number:02d}.txt").write_text(poem)
    cfg = dataclasses.replace(tiny_config, corpus="files", files=str(tmp_path / "texts" / "*.txt"))

    assert len(list(read_books(cfg))) == 13

    notes = cleaning_notes(capsys)
    named = [note.split(": ")[1] for note in notes[:10]]
    assert named == [str(tmp_path / "texts" / f"{number:02d}.txt") for number in range(10)]
    assert notes[10:] == [
        "note: and 3 more books kept less than 90% of their characters after removing Gutenberg headers and licences"
    ]


@pytest.mark.parametrize("first_step", [0, 3])
@pytest.mark.parametrize("stream_windows", [0, 4], ids=["windows", "streams"])
def test_workers_and_replicas_share_the_very_batches_one_device_trains_on(tiny_config, first_step, stream_windows):
    def training_batches():  # as a new process makes them: each pass over a dataset object is shuffled anew
        tf.random.set_seed(0)
        return make_datasets(dataclasses.replace(tiny_config, stream_windows=stream_windows)).train  # batches of 16 rows

    one_device = [[part.numpy() for part in batch] for batch in training_batches().take(6)]
    # Two workers of two replicas each: every worker yields 2 per-replica batches of 4 rows per step.
    shares = []
    for w in range(2):
        share = worker_batches(training_batches(), first_step=first_step, worker=w, num_workers=2, replicas_per_worker=2)
        shares.append([[part.numpy() for part in batch] for batch in share.take(4)])
    assert {part.shape[0] for worker in shares for batch in worker for part in batch} == {4}
    for step in range(2):  # the replicas' rows, worker by worker, make up the global batch of that step (carried too)
        for part, whole in enumerate(one_device[first_step + step]):
            rebuilt = np.concatenate([shares[w][2 * step + r][part] for w in range(2) for r in range(2)])
            np.testing.assert_array_equal(rebuilt, whole)
