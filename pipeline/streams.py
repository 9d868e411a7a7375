"""Streams: runs of consecutive windows that one batch row reads in order, the LSTM state carried from window to window.

With --stream_windows=N a book is cut into streams of N windows of seq_len + 1 characters, each window
starting with the last character of the one before, so its input goes on exactly where the previous input
ended. Row r of batch k + 1 holds the window after row r's window of batch k, and the training step starts
each window from the state the last one left (char-rnn's truncated backpropagation through time): the model
learns to use more than one window of context, as generation does, and no character but a stream's first few
is predicted from an empty state. `carried` is 0 for a stream's first window, where the state starts empty.
"""

from collections.abc import Sequence

import tensorflow as tf

from pipeline.windows import count_windows, cut_windows, make_scoring_batches, split_input_target


def count_streams(num_chars: int, *, seq_len: int, stream_windows: int) -> int:
    """How many streams cut_streams cuts from a book of `num_chars` characters (each takes stream_windows * seq_len + 1)."""
    return max(0, (num_chars - 1) // (stream_windows * seq_len))


def cut_streams(ids: tf.Tensor, *, seq_len: int, stream_windows: int, seed: tf.Tensor | None = None) -> tf.Tensor:
    """A book's ids [num_chars] -> streams [count_streams(...), stream_windows, seq_len + 1].

    'abcdefghij' with seq_len 2, 2 windows per stream -> ['abc', 'cde'], ['efg', 'ghi'] (the 'j' is left over).
    With a seed (int64 [2]) the streams start at a random character within the leftover, so each pass of
    training reads other windows of the same text, and always as many.
    """
    stream_chars = stream_windows * seq_len
    num_streams = (tf.shape(ids, out_type=tf.int64)[0] - 1) // stream_chars
    length = num_streams * stream_chars
    offset = tf.constant(0, tf.int64)
    if seed is not None:
        leftover = tf.shape(ids, out_type=tf.int64)[0] - 1 - length
        offset = tf.random.stateless_uniform([], seed, maxval=leftover + 1, dtype=tf.int64)
    inputs = tf.reshape(ids[offset : offset + length], [-1, stream_windows, seq_len])
    next_chars = tf.reshape(ids[offset + seq_len : offset + length + 1 : seq_len], [-1, stream_windows, 1])
    return tf.concat([inputs, next_chars], axis=-1)


def make_stream_batches(streams: tf.data.Dataset, *, batch_size: int, stream_windows: int, window_len: int):
    """Blocks of streams, each flattened [n, stream_windows * window_len] -> (input, target, carried) batches:
    int32 [batch_size, window_len - 1] twice and float32 [batch_size].

    Every batch_size streams become stream_windows batches; row r of each holds the next window of stream r.
    Streams a, b of windows a1 a2, b1 b2 in batches of 2 -> [a1, b1] (carried [0, 0]), [a2, b2] (carried [1, 1]).
    """

    def steps_of(rows):
        return tf.data.Dataset.from_tensor_slices(_in_step_order(rows, stream_windows=stream_windows, window_len=window_len))

    batches = streams.rebatch(batch_size, drop_remainder=True).flat_map(steps_of)
    return batches.map(lambda windows, carried: (*split_input_target(windows), carried), num_parallel_calls=tf.data.AUTOTUNE)


def scoring_batches(
    book_ids: tf.data.Dataset, chars_per_book: Sequence[int], *, seq_len: int, batch_size: int, stream_windows: int
) -> tf.data.Dataset:
    """Batches that score every window of each book's ids once, in order (`chars_per_book` counts them up front):
    (input, target, weight) windows each from an empty state (windows.make_scoring_batches), or with stream_windows
    (input, target, weight, carried) streams, each window scored after the one before it (make_scoring_streams)."""
    if stream_windows:
        num_streams = sum(count_scoring_streams(n, seq_len=seq_len, stream_windows=stream_windows) for n in chars_per_book)
        return make_scoring_streams(
            book_ids, num_streams=num_streams, batch_size=batch_size, seq_len=seq_len, stream_windows=stream_windows
        )
    book_windows = book_ids.map(lambda ids: cut_windows(ids, seq_len=seq_len), num_parallel_calls=tf.data.AUTOTUNE)
    num_windows = sum(count_windows(n, seq_len=seq_len) for n in chars_per_book)
    return make_scoring_batches(book_windows, num_windows=num_windows, batch_size=batch_size)


def count_scoring_streams(num_chars: int, *, seq_len: int, stream_windows: int) -> int:
    """How many streams make_scoring_streams makes of a book: its windows, the last stream filled up (0 without a window)."""
    return -(-count_windows(num_chars, seq_len=seq_len, stride=seq_len) // stream_windows)


def make_scoring_streams(
    book_ids: tf.data.Dataset, *, num_streams: int, batch_size: int, seq_len: int, stream_windows: int
) -> tf.data.Dataset:
    """Each book's ids, in order, `num_streams` streams in all -> (input, target, weight, carried) batches, all full.

    Every window of seq_len + 1 characters of each book (windows overlapping by one character) is scored once,
    with the state carried from the window before it in its stream. A book's last stream and the last
    batch are filled up with windows of weight 0 (as windows.make_scoring_batches does for windows).
    """
    window_len = seq_len + 1

    def streams_of(ids):
        windows = cut_windows(ids, seq_len=seq_len, stride=seq_len)  # each starting with the last one's last character
        num_windows = tf.shape(windows)[0]
        filler = -num_windows % stream_windows
        windows = tf.concat([windows, tf.zeros([filler, window_len], ids.dtype)], axis=0)
        weights = tf.concat([tf.ones([num_windows]), tf.zeros([filler])], axis=0)
        return tf.reshape(windows, [-1, stream_windows * window_len]), tf.reshape(weights, [-1, stream_windows])

    padding = -num_streams % batch_size
    filler = tf.data.Dataset.from_tensors(
        (tf.zeros([padding, stream_windows * window_len], book_ids.element_spec.dtype), tf.zeros([padding, stream_windows]))
    )
    streams = book_ids.map(streams_of).concatenate(filler).rebatch(batch_size, drop_remainder=True)

    def steps_of(rows, weights):
        windows, carried = _in_step_order(rows, stream_windows=stream_windows, window_len=window_len)
        return tf.data.Dataset.from_tensor_slices((windows, tf.transpose(weights), carried))

    batches = streams.flat_map(steps_of)
    return batches.map(lambda w, weight, carried: (*split_input_target(w), weight, carried))


def _in_step_order(rows: tf.Tensor, *, stream_windows: int, window_len: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Streams [batch, stream_windows * window_len] -> their windows [stream_windows, batch, window_len], a batch
    per step, and `carried` [stream_windows, batch]: 0 in the first step, where every stream starts."""
    windows = tf.transpose(tf.reshape(rows, [-1, stream_windows, window_len]), [1, 0, 2])
    carried = tf.cast(tf.range(stream_windows) > 0, tf.float32)[:, None] * tf.ones_like(windows[:, :, 0], tf.float32)
    return windows, carried
