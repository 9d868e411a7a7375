"""Ids to training examples, with tensor ops only: windows of a book, shuffled blocks, (input, target) batches.

Every transform takes a whole book or block of windows at a time, never one window per tf.data
element: per-element bookkeeping would cost more than the training step's input needs.
"""

import tensorflow as tf

# Windows of one book that travel together before blocks of several books are shuffled (see mix_books).
WINDOWS_PER_CHUNK = 64


def split_train_validation(ids, *, validation_fraction: float):
    """The start of a book for training and its last `validation_fraction` for validation.

    ('abcdefghij', validation_fraction=0.2) -> ('abcdefgh', 'ij'); works on strings and arrays of ids alike.
    Cutting each book in two before windowing means no window can hold both training and validation text.
    """
    cut = len(ids) - int(len(ids) * validation_fraction)
    return ids[:cut], ids[cut:]


def count_windows(num_chars: int, *, seq_len: int, stride: int = 0) -> int:
    """How many seq_len + 1 windows cut_windows cuts from a book of `num_chars` characters (stride 0: seq_len + 1)."""
    window_len = seq_len + 1
    stride = stride or window_len
    return 0 if num_chars < window_len else (num_chars - window_len) // stride + 1


def cut_windows(ids: tf.Tensor, *, seq_len: int, stride: int = 0) -> tf.Tensor:
    """A book's ids [num_chars] -> windows [num_windows, seq_len + 1], each starting `stride` after the last.

    'hello world' with seq_len 4 -> 'hello', ' worl' (the leftover 'd' is dropped);
    with stride 3 -> 'hello', 'lo wo', 'worl'... Stride 0 means seq_len + 1: windows do not overlap.
    """
    window_len = seq_len + 1
    stride = stride or window_len
    if stride == window_len:  # the common case is one reshape, no copy
        num_windows = tf.shape(ids)[0] // window_len
        return tf.reshape(ids[: num_windows * window_len], [num_windows, window_len])
    return tf.signal.frame(ids, window_len, stride)


def shuffle_rows(block: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """The rows of `block` in an order that only `seed` (int64 [2]) decides, whatever runs in parallel."""
    return tf.random.experimental.stateless_shuffle(block, seed=seed)


def split_input_target(windows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Windows [..., seq_len + 1] -> int32 (input, target) [..., seq_len]: 'hello' -> ('hell', 'ello')."""
    windows = tf.cast(windows, tf.int32)
    return windows[..., :-1], windows[..., 1:]


def mix_books(book_windows: tf.data.Dataset, *, books_in_parallel: int, shuffle_block: int) -> tf.data.Dataset:
    """(seed int64 [2], windows [n, window_len]) of each book -> blocks of many books' windows, shuffled.

    Chunks of WINDOWS_PER_CHUNK windows of `books_in_parallel` books alternate, then every block of
    about `shuffle_block` windows is shuffled as a whole, so one block holds windows of about
    `books_in_parallel` books in random order. A block's order comes from the seed of its first
    chunk's book (and the chunk's place in it), so it is the same whatever runs in parallel.
    window_len must be known when traced.
    """

    def chunks_of(book_seed, windows):
        chunks = tf.data.Dataset.from_tensors(windows).rebatch(WINDOWS_PER_CHUNK).enumerate()
        return chunks.map(lambda index, chunk: (tf.stack([book_seed[0], book_seed[1] * 2**24 + index]), chunk))

    chunks = book_windows.interleave(chunks_of, cycle_length=books_in_parallel, block_length=1)
    # ragged_batch copies the chunks into one new block (rebatching slices of slices makes TensorFlow log errors).
    blocks = chunks.ragged_batch(max(1, shuffle_block // WINDOWS_PER_CHUNK))
    return blocks.map(
        lambda seeds, block: shuffle_rows(block.values, tf.stack([seeds[0, 0], -1 - seeds[0, 1]])),  # < 0: apart from books
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def make_batches(blocks: tf.data.Dataset, *, batch_size: int, drop_remainder: bool) -> tf.data.Dataset:
    """Blocks of windows [n, seq_len + 1] -> (input, target) int32 batches [batch_size, seq_len], blocks running on."""
    return blocks.rebatch(batch_size, drop_remainder=drop_remainder).map(
        split_input_target, num_parallel_calls=tf.data.AUTOTUNE
    )


def make_scoring_batches(book_windows: tf.data.Dataset, *, num_windows: int, batch_size: int) -> tf.data.Dataset:
    """Windows [n, seq_len + 1] (any n per element), `num_windows` in all -> (input, target, weight) batches, all full.

    input and target are int32 [batch_size, seq_len], weight float32 [batch_size]: 1 for every window given, 0 for
    the all-zero windows that fill up the last batch. Five windows in batches of 4 -> weights [1, 1, 1, 1], [1, 0, 0, 0].
    Every batch has the same shape, so each replica of a tf.distribute strategy gets an equal, non-empty share
    (a TPU compiles one shape); scores weighted this way count every window once and padding not at all.
    """
    window_len = book_windows.element_spec.shape[-1]
    dtype = book_windows.element_spec.dtype
    padding = -num_windows % batch_size
    weighted = book_windows.map(lambda w: (w, tf.ones(tf.shape(w)[:1], tf.float32)))
    filler = tf.data.Dataset.from_tensors((tf.zeros([padding, window_len], dtype), tf.zeros([padding], tf.float32)))
    batches = weighted.concatenate(filler).rebatch(batch_size, drop_remainder=True)
    return batches.map(lambda w, weight: (*split_input_target(w), weight), num_parallel_calls=tf.data.AUTOTUNE)
