"""Scoring in bits per character, as evaluate.py prints it: each book of a corpus by an exported model, then all."""

import collections
import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

import evaluation
import export
from models.char_lstm import build_model
from pipeline.text import clean_book_text
from pipeline.vocab import build_vocabulary


def test_each_book_is_scored_whole_in_corpus_order(tiny_config, gutenberg_mirror, tmp_path):
    vocabulary = build_vocabulary(["abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ.,;:!?'\"-\n"])
    model = build_model(tiny_config.model, vocabulary.size)  # untrained: about a uniform guess
    export.write_export(tmp_path / "export", model=model, config=tiny_config, vocabulary=vocabulary, steps_completed=0)
    exported = export.load_export(tmp_path / "export")

    scores = list(evaluation.evaluate_books(dataclasses.replace(exported.config, books=(31469, 11)), exported))

    assert [score.name for score in scores] == ["Gutenberg book 31469", "Gutenberg book 11"]
    for score, book_id in zip(scores, (31469, 11)):
        text = clean_book_text((gutenberg_mirror / f"cache/epub/{book_id}/pg{book_id}.txt").read_bytes(), name=str(book_id))
        assert score.num_chars == len(text) // 33 * 32  # whole windows of seq_len + 1 = 33; the 32 targets are scored
        assert abs(score.bits_per_char - math.log2(vocabulary.size)) < 0.5
        assert set(score.unknown_chars) == set(text) - set(vocabulary.chars)  # digits, curly quotes, ...
    total = evaluation.combine_scores(scores)
    assert total.num_chars == scores[0].num_chars + scores[1].num_chars


def test_in_streams_each_window_is_scored_from_the_state_the_one_before_left(tiny_config, gutenberg_mirror, tmp_path):
    cfg = dataclasses.replace(tiny_config, stream_windows=4)  # streams of 4 windows of 32 + 1 characters
    vocabulary = build_vocabulary(["abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ.,;:!?'\"-\n"])
    model = build_model(cfg.model, vocabulary.size)
    export.write_export(tmp_path / "export", model=model, config=cfg, vocabulary=vocabulary, steps_completed=0)

    (score,) = evaluation.evaluate_books(cfg, export.load_export(tmp_path / "export"))

    # The same as scoring each stream as one window of 4 x 32 characters (a book's last stream may be shorter).
    text = clean_book_text((gutenberg_mirror / "cache/epub/11/pg11.txt").read_bytes(), name="11")
    ids = np.array(vocabulary.encode_text(text), np.int32)
    scored = (len(ids) - 1) // 32 * 32
    whole = scored // 128 * 128
    streams = [ids[:whole].reshape(-1, 128), ids[1 : whole + 1].reshape(-1, 128)]  # inputs, targets
    last = [ids[whole:scored][None], ids[whole + 1 : scored + 1][None]]
    nats = 0.0
    for inputs, targets in (streams, last) if scored > whole else (streams,):
        logits = model(inputs)
        nats += float(tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)))
    assert score.num_chars == scored
    assert score.bits_per_char == pytest.approx(nats / scored / math.log(2), rel=1e-5)


def test_all_books_together_weigh_each_book_by_its_characters():
    scores = [
        evaluation.Score("a.txt", bits_per_char=1.0, num_chars=100, unknown_chars=collections.Counter("é")),
        evaluation.Score("b.txt", bits_per_char=2.0, num_chars=300, unknown_chars=collections.Counter("éü")),
    ]

    assert evaluation.combine_scores(scores) == evaluation.Score(
        "all", bits_per_char=1.75, num_chars=400, unknown_chars=collections.Counter({"é": 2, "ü": 1})
    )
