import tensorflow as tf

from pipeline.vocab import build_vocabulary
from pipeline.windows import (
    count_windows,
    make_evaluation_batches,
    make_training_batches,
    make_windows,
    split_input_target,
    split_train_validation,
)

VOCABULARY = build_vocabulary(["abcdefghijklmnopqrstuvwxyz "])


def windows_of(texts, *, seq_len, books_in_parallel=1):
    books = tf.data.Dataset.from_tensor_slices(texts).map(VOCABULARY.encode)
    return [VOCABULARY.decode(w) for w in make_windows(books, seq_len=seq_len, books_in_parallel=books_in_parallel)]


def test_split_input_target_shifts_by_one_character():
    inputs, targets = split_input_target(VOCABULARY.encode("hello"))
    assert VOCABULARY.decode(inputs) == "hell"
    assert VOCABULARY.decode(targets) == "ello"


def test_windows_are_seq_len_plus_one_and_the_leftover_is_dropped():
    assert windows_of(["hello world"], seq_len=4) == ["hello", " worl"]
    assert count_windows(len("hello world"), seq_len=4) == 2


def test_windows_never_span_two_books_and_books_alternate():
    assert windows_of(["abcdefg", "hijklmn"], seq_len=2, books_in_parallel=2) == ["abc", "hij", "def", "klm"]


def test_validation_is_the_end_of_the_book():
    assert split_train_validation("abcdefghij", validation_fraction=0.2) == ("abcdefgh", "ij")
    assert split_train_validation("abcdefghij", validation_fraction=0.0) == ("abcdefghij", "")


def test_training_batches_are_full_shuffled_by_seed_and_endless():
    pairs = tf.data.Dataset.range(10).map(lambda i: (tf.fill([3], tf.cast(i, tf.int32)), tf.fill([3], tf.cast(i, tf.int32))))

    def first_inputs(seed):
        batches = make_training_batches(pairs, batch_size=4, shuffle_buffer=10, seed=seed)
        return [inputs[:, 0].numpy().tolist() for inputs, _ in batches.take(6)]

    epochs = first_inputs(seed=1)
    assert all(len(batch) == 4 for batch in epochs)  # 10 pairs -> 2 full batches per pass, remainder dropped
    assert epochs == first_inputs(seed=1)
    assert epochs != first_inputs(seed=2)
    assert epochs[0:2] != epochs[2:4]  # every pass is shuffled anew


def test_evaluation_batches_keep_every_pair_in_order():
    pairs = tf.data.Dataset.range(5).map(lambda i: (i, i))
    assert [x.numpy().tolist() for x, _ in make_evaluation_batches(pairs, batch_size=2)] == [[0, 1], [2, 3], [4]]
