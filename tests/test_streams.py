import tensorflow as tf

from pipeline.streams import count_scoring_streams, count_streams, cut_streams, make_scoring_streams, make_stream_batches
from pipeline.vocab import build_vocabulary

VOCABULARY = build_vocabulary(["abcdefghijklmnopqrstuvwxyz "])


def streams_of(text, *, seq_len, stream_windows, seed=None):
    streams = cut_streams(VOCABULARY.encode(text), seq_len=seq_len, stream_windows=stream_windows, seed=seed)
    return [[VOCABULARY.decode(window) for window in stream] for stream in streams]


def test_each_window_of_a_stream_starts_where_the_last_one_ended():
    assert streams_of("abcdefghij", seq_len=2, stream_windows=2) == [["abc", "cde"], ["efg", "ghi"]]
    assert count_streams(10, seq_len=2, stream_windows=2) == 2
    assert streams_of("abcd", seq_len=2, stream_windows=2) == [] and count_streams(4, seq_len=2, stream_windows=2) == 0


def test_a_seed_moves_the_streams_within_the_leftover_and_keeps_their_number():
    text = "abcdefghijklm"  # 13 characters: two streams of 2 windows of 3 + 1 take them all
    starts = {
        streams_of(text, seq_len=3, stream_windows=2, seed=tf.constant([1, seed], tf.int64))[0][0][0] for seed in range(40)
    }
    assert starts == {"a"}  # 2 streams take 12 + 1 characters: nothing left over to move into
    text = "abcdefghijklmnop"  # 16: 3 characters left over
    moved = [streams_of(text, seq_len=3, stream_windows=2, seed=tf.constant([1, seed], tf.int64)) for seed in range(40)]
    assert {streams[0][0][0] for streams in moved} == {"a", "b", "c", "d"}
    assert all(len(streams) == 2 for streams in moved)
    assert moved[0] == streams_of(text, seq_len=3, stream_windows=2, seed=tf.constant([1, 0], tf.int64))


def test_batch_rows_read_their_streams_window_after_window():
    # Four streams (letters a-d) of three windows each; batches of 2 rows: a and b side by side, then c and d.
    streams = [[[10 * s + w] * 3 for w in range(3)] for s in range(4)]
    flat = tf.data.Dataset.from_tensors(tf.reshape(tf.constant(streams), [4, 9]))
    batches = list(make_stream_batches(flat, batch_size=2, stream_windows=3, window_len=3))
    assert [inputs[:, 0].numpy().tolist() for inputs, _, _ in batches] == [[0, 10], [1, 11], [2, 12], [20, 30], [21, 31], [22, 32]]
    assert [carried.numpy().tolist() for _, _, carried in batches] == [[0, 0], [1, 1], [1, 1]] * 2
    inputs, targets, _ = batches[0]
    assert inputs.shape == targets.shape == (2, 2) and inputs.dtype == tf.int32


def test_scoring_streams_score_every_window_once_in_order():
    books = ["abcdefghij", "klmnopq"]  # 4 windows of 3 characters ('abc' 'cde' 'efg' 'ghi'), then 3
    num_streams = sum(count_scoring_streams(len(book), seq_len=2, stream_windows=3) for book in books)
    assert num_streams == 3  # [abc cde efg] [ghi - -] [klm mno opq]
    ids = tf.data.Dataset.from_generator(
        lambda: (VOCABULARY.encode(book) for book in books), output_signature=tf.TensorSpec([None], tf.int32)
    )
    batches = list(make_scoring_streams(ids, num_streams=num_streams, batch_size=2, seq_len=2, stream_windows=3))
    assert len(batches) == 6  # two groups of 2 streams (the fourth all filler), 3 steps each
    scored = [
        (VOCABULARY.decode(inputs[row]) + VOCABULARY.decode(targets[row][-1:]), float(carried[row]))
        for inputs, targets, weight, carried in batches
        for row in range(2)
        if weight[row] == 1
    ]
    assert sorted(window for window, _ in scored) == sorted(["abc", "cde", "efg", "ghi", "klm", "mno", "opq"])
    assert dict(scored) == {"abc": 0, "cde": 1, "efg": 1, "ghi": 0, "klm": 0, "mno": 1, "opq": 1}
