"""Scoring a model in bits per character: the validation score of training, and evaluate.py's score of each book."""

import collections
import dataclasses
from collections.abc import Iterable, Iterator

import keras
import tensorflow as tf

import export
from config import Config
from models.carried_state import CarriedState
from pipeline.datasets import distribute_by_rows, make_evaluation_books
from progress import LN2


@dataclasses.dataclass(frozen=True)
class Score:
    name: str  # "Gutenberg book 84", a file path, or "all"
    bits_per_char: float  # mean cross-entropy of the characters scored, in bits (lower is better)
    num_chars: int  # characters scored: the targets of the book's whole windows
    unknown_chars: collections.Counter  # characters outside the model's vocabulary, read as the unknown id


def make_evaluate(model: keras.Model, strategy: tf.distribute.Strategy | None = None, *, stream_rows: int = 0):
    """A function: batches of (inputs, targets, weights) -> (bits per character, number of characters scored).

    Only windows of weight 1 count; those of weight 0 fill up the last batch (windows.make_scoring_batches).
    With stream_rows (the global batch size), batches are (inputs, targets, weights, carried): streams, each
    window scored from the state the window before it left (streams.make_scoring_streams).
    """
    strategy = strategy or tf.distribute.get_strategy()
    if stream_rows:
        with strategy.scope():
            carried_state = CarriedState(model, rows=stream_rows // strategy.num_replicas_in_sync)

    def replica_sums(inputs, targets, weights, carried=None):
        if carried is None:
            logits = model(inputs, training=False)
        else:
            logits = carried_state.logits(inputs, carried, training=False)
        logits = tf.cast(logits, tf.float32)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)  # [batch, seq_len]
        chars = tf.reduce_sum(weights) * tf.cast(tf.shape(targets)[1], tf.float32)
        return tf.reduce_sum(losses * weights[:, None]), chars

    @tf.function
    def summed_loss(batch):
        nats, chars = strategy.run(replica_sums, args=batch)
        return (
            strategy.reduce(tf.distribute.ReduceOp.SUM, nats, axis=None),
            strategy.reduce(tf.distribute.ReduceOp.SUM, chars, axis=None),
        )

    def evaluate(batches: tf.data.Dataset) -> tuple[float, int]:
        total_nats, total_chars = 0.0, 0
        for batch in distribute_by_rows(batches, strategy):
            nats, chars = summed_loss(batch)
            total_nats += float(nats)
            total_chars += round(float(chars))
        return total_nats / max(total_chars, 1) / LN2, total_chars

    return evaluate


def evaluate_books(cfg: Config, exported: export.Export) -> Iterator[Score]:
    """The score of `exported`'s model on each book of `cfg`'s corpus, in corpus order, each as soon as it is scored.

    Every book is scored whole, in windows of cfg.seq_len + 1 characters each read from an empty LSTM
    state, or in streams of cfg.stream_windows windows, each read from the state the one before it left:
    the same way training scores its validation text, so the numbers compare directly.

        scores = list(evaluate_books(dataclasses.replace(exported.config, books=(84,)), exported))
    """
    evaluate = make_evaluate(export.load_model(exported), stream_rows=cfg.batch_size if cfg.stream_windows else 0)
    for book in make_evaluation_books(cfg, vocabulary=exported.vocabulary):
        bits_per_char, num_chars = evaluate(book.batches)
        yield Score(name=book.name, bits_per_char=bits_per_char, num_chars=num_chars, unknown_chars=book.unknown_chars)


def combine_scores(scores: Iterable[Score]) -> Score:
    """The score of all the books together, named "all": each book weighs as much as the characters scored in it."""
    scores = list(scores)
    num_chars = sum(score.num_chars for score in scores)
    return Score(
        name="all",
        bits_per_char=sum(score.bits_per_char * score.num_chars for score in scores) / num_chars,
        num_chars=num_chars,
        unknown_chars=sum((score.unknown_chars for score in scores), collections.Counter()),
    )
