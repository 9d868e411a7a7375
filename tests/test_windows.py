import numpy as np
import tensorflow as tf

from pipeline.vocab import build_vocabulary
from pipeline.windows import (
    count_windows,
    cut_windows,
    make_batches,
    make_scoring_batches,
    mix_books,
    shuffle_rows,
    split_input_target,
    split_train_validation,
)

VOCABULARY = build_vocabulary(["abcdefghijklmnopqrstuvwxyz "])


def windows_of(text, *, seq_len, stride=0):
    return [VOCABULARY.decode(w) for w in cut_windows(VOCABULARY.encode(text), seq_len=seq_len, stride=stride)]


def test_split_input_target_shifts_by_one_character():
    inputs, targets = split_input_target(VOCABULARY.encode("hello"))
    assert inputs.dtype == targets.dtype == tf.int32
    assert VOCABULARY.decode(inputs) == "hell"
    assert VOCABULARY.decode(targets) == "ello"


def test_windows_are_seq_len_plus_one_and_the_leftover_is_dropped():
    assert windows_of("hello world", seq_len=4) == ["hello", " worl"]
    assert count_windows(len("hello world"), seq_len=4) == 2


def test_window_stride_makes_windows_overlap():
    assert windows_of("hello world", seq_len=4, stride=3) == ["hello", "lo wo", "world"]
    assert windows_of("hello world", seq_len=4, stride=1)[:3] == ["hello", "ello ", "llo w"]
    assert count_windows(11, seq_len=4, stride=3) == 3 and count_windows(11, seq_len=4, stride=1) == 7
    assert windows_of("hell", seq_len=4, stride=1) == [] and count_windows(4, seq_len=4, stride=1) == 0


def test_validation_is_the_end_of_the_book():
    assert split_train_validation("abcdefghij", validation_fraction=0.2) == ("abcdefgh", "ij")
    assert split_train_validation("abcdefghij", validation_fraction=0.0) == ("abcdefghij", "")
    train, validation = split_train_validation(np.arange(10), validation_fraction=0.2)
    assert train.tolist() == list(range(8)) and validation.tolist() == [8, 9]


def test_shuffled_rows_depend_only_on_the_seed():
    rows = tf.reshape(tf.range(20), [10, 2])
    once = shuffle_rows(rows, tf.constant([1, 2], tf.int64)).numpy().tolist()
    assert once == shuffle_rows(rows, tf.constant([1, 2], tf.int64)).numpy().tolist()
    assert once != shuffle_rows(rows, tf.constant([1, 3], tf.int64)).numpy().tolist()
    assert sorted(once) == rows.numpy().tolist()


def test_mixed_blocks_hold_every_window_of_every_book_once_and_mix_books():
    # Book b's windows are [b, i, i]: after mixing, each window is still whole and appears once.
    books = [tf.constant([[b, i, i] for i in range(100 + 50 * b)]) for b in range(3)]
    blocks = mix_books(
        tf.data.Dataset.from_tensor_slices(tf.ragged.stack(books)).enumerate().map(
            lambda b, w: (tf.stack([tf.constant(7, tf.int64), b]), tf.reshape(w.to_tensor(), [-1, 3]))
        ),
        books_in_parallel=3,
        shuffle_block=192,  # three chunks of 64 windows
    )
    blocks = [block.numpy().tolist() for block in blocks]
    windows = [tuple(w) for block in blocks for w in block]
    assert sorted(windows) == sorted(tuple(w) for book in books for w in book.numpy().tolist())
    assert len({b for b, _, _ in blocks[0]}) == 3  # the first block already holds all three books


def test_batches_run_on_across_blocks_and_drop_only_the_last_remainder():
    blocks = tf.data.Dataset.from_tensor_slices(tf.ragged.constant([[[i, i]] * n for i, n in enumerate([3, 4, 2])])).map(
        lambda b: b.to_tensor()
    )
    batches = make_batches(blocks, batch_size=4, drop_remainder=True)
    assert [inputs[:, 0].numpy().tolist() for inputs, _ in batches] == [[0, 0, 0, 1], [1, 1, 1, 2]]
    kept = make_batches(blocks, batch_size=4, drop_remainder=False)
    assert [len(inputs) for inputs, _ in kept] == [4, 4, 1]


def test_scoring_batches_are_all_full_and_weigh_the_filler_windows_zero():
    first, second = (tf.data.Dataset.from_tensors(tf.constant([[i, i + 10, i + 20]] * n)) for i, n in enumerate([3, 2]))
    batches = make_scoring_batches(first.concatenate(second), num_windows=5, batch_size=4)
    assert [(inputs.numpy().tolist(), targets.numpy().tolist(), weights.numpy().tolist()) for inputs, targets, weights in batches] == [
        ([[0, 10]] * 3 + [[1, 11]], [[10, 20]] * 3 + [[11, 21]], [1, 1, 1, 1]),
        ([[1, 11], [0, 0], [0, 0], [0, 0]], [[11, 21], [0, 0], [0, 0], [0, 0]], [1, 0, 0, 0]),
    ]
    exactly_full = make_scoring_batches(first, num_windows=3, batch_size=3)
    assert [weights.numpy().tolist() for _, _, weights in exactly_full] == [[1, 1, 1]]
