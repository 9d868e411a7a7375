"""Ids to training examples: seq_len + 1 windows, shifted (input, target) pairs, shuffled batches."""

import tensorflow as tf


def split_train_validation(text: str, *, validation_fraction: float) -> tuple[str, str]:
    """The start of a book for training and its last `validation_fraction` for validation.

    ('abcdefghij', validation_fraction=0.2) -> ('abcdefgh', 'ij'). Cutting each book in two before
    windowing means no window can hold both training and validation text.
    """
    cut = len(text) - int(len(text) * validation_fraction)
    return text[:cut], text[cut:]


def count_windows(num_chars: int, *, seq_len: int) -> int:
    """How many whole seq_len + 1 windows make_windows cuts from a text of `num_chars` characters."""
    return num_chars // (seq_len + 1)


def make_windows(book_ids: tf.data.Dataset, *, seq_len: int, books_in_parallel: int) -> tf.data.Dataset:
    """Books of ids [num_chars] -> non-overlapping windows [seq_len + 1]; a window never spans two books.

    ids of 'hello world' with seq_len 4 -> 'hello', ' worl' (the leftover 'd' is dropped).
    Windows of `books_in_parallel` books alternate, so even a small shuffle buffer mixes books.
    """
    window_len = seq_len + 1

    def cut_windows(ids):
        num_windows = tf.shape(ids)[0] // window_len
        windows = tf.reshape(ids[: num_windows * window_len], [num_windows, window_len])
        return tf.data.Dataset.from_tensor_slices(windows)

    return book_ids.interleave(cut_windows, cycle_length=books_in_parallel, block_length=1)


def split_input_target(window: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A window [seq_len + 1] -> (input [seq_len], target [seq_len]): 'hello' -> ('hell', 'ello')."""
    return window[:-1], window[1:]


def make_training_batches(
    pairs: tf.data.Dataset, *, batch_size: int, shuffle_buffer: int, seed: int
) -> tf.data.Dataset:
    """(input, target) pairs -> endless shuffled batches ([batch_size, seq_len], [batch_size, seq_len]).

    Every pass over the data is reshuffled (from `seed`, so runs repeat) and holds the same number of
    full batches, so steps_per_epoch is exact.
    """
    return (
        pairs.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size, drop_remainder=True)
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )


def make_evaluation_batches(pairs: tf.data.Dataset, *, batch_size: int) -> tf.data.Dataset:
    """(input, target) pairs -> batches in order, the last one possibly smaller; every pair is scored once."""
    return pairs.batch(batch_size).prefetch(tf.data.AUTOTUNE)
