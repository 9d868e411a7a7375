import keras
import numpy as np
import pytest
import tensorflow as tf

from config import Config
from errors import UserError
from models.char_lstm import build_model
from models.sampling import generate_text, greedy, sample
from pipeline.vocab import build_vocabulary

VOCABULARY = build_vocabulary(["helo wrd"])  # ids: ' '=1 d=2 e=3 h=4 l=5 o=6 r=7 w=8


class SpellingModel(keras.Model):
    """A fake batch-1 stateful model that makes the next character of TARGET certain."""

    TARGET = "hello world"

    def __init__(self):
        super().__init__()
        self.position = tf.Variable(0)
        self.next_ids = tf.constant(VOCABULARY.encode(self.TARGET[1:] + " "))

    def call(self, ids, training=False):
        self.position.assign_add(tf.shape(ids)[1])
        logits = 20.0 * tf.one_hot(self.next_ids[self.position - 1], VOCABULARY.size)
        return tf.reshape(logits, [1, 1, VOCABULARY.size])


def test_greedy_picks_the_most_likely_character():
    logits = tf.constant([[0.0, 1.0, 5.0, 2.0], [9.0, 1.0, 0.0, 0.0]])
    assert greedy(logits, temperature=1.0, seed=tf.constant([0, 0])).numpy().tolist() == [2, 0]


def test_sampling_repeats_with_the_same_seed_and_follows_the_probabilities():
    logits = tf.math.log(tf.constant([[0.7, 0.2, 0.1]] * 2000))
    first = sample(logits, temperature=1.0, seed=tf.constant([1, 0])).numpy()
    again = sample(logits, temperature=1.0, seed=tf.constant([1, 0])).numpy()
    other = sample(logits, temperature=1.0, seed=tf.constant([2, 0])).numpy()
    assert first.tolist() == again.tolist()
    assert first.tolist() != other.tolist()
    np.testing.assert_allclose(np.bincount(first, minlength=3) / 2000, [0.7, 0.2, 0.1], atol=0.04)


def test_low_temperature_sharpens_the_distribution():
    logits = tf.math.log(tf.constant([[0.6, 0.4]] * 2000))
    cold = sample(logits, temperature=0.1, seed=tf.constant([3, 0])).numpy()
    assert (cold == 0).mean() > 0.95


def test_generation_continues_the_seed_text_one_character_at_a_time():
    text = generate_text(SpellingModel(), VOCABULARY, seed_text="he", length=9, temperature=0.5, seed=0)
    assert "".join(text) == "llo world"


def test_temperature_zero_is_greedy():
    text = generate_text(SpellingModel(), VOCABULARY, seed_text="h", length=10, temperature=0, seed=0)
    assert "".join(text) == "ello world"


def test_same_seed_gives_the_same_text_from_a_real_model():
    model = build_model(Config(embedding_dim=4, rnn_units=8), VOCABULARY.size, batch_size=1, stateful=True)

    def text(seed):
        return "".join(generate_text(model, VOCABULARY, seed_text="hello", length=40, temperature=1.0, seed=seed))

    assert text(1) == text(1)
    assert text(1) != text(2)
    assert "[UNK]" not in text(3)  # the out-of-vocabulary id is never generated


def test_seed_text_with_unknown_characters_names_them():
    with pytest.raises(UserError, match="never saw in training: 'x', 'Z'"):
        generate_text(SpellingModel(), VOCABULARY, seed_text="hex Zed", length=5, temperature=1.0, seed=0)
