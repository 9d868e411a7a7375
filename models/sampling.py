"""Choosing the next character (one small function per strategy) and the loop that generates text."""

from collections.abc import Iterator

import keras
import tensorflow as tf

from errors import UserError
from models.char_lstm import reset_states
from pipeline.vocab import OOV_ID, Vocabulary


def apply_temperature(logits: tf.Tensor, temperature: float) -> tf.Tensor:
    """Logits [batch, vocab] divided by the temperature, in float32 whatever the model's precision."""
    return tf.cast(logits, tf.float32) / temperature


def greedy(logits: tf.Tensor, *, temperature: float, seed: tf.Tensor) -> tf.Tensor:
    """The most likely id per row: logits [batch, vocab] -> ids [batch]. Temperature and seed play no part."""
    del temperature, seed
    return tf.argmax(logits, axis=-1, output_type=tf.int32)


def sample(logits: tf.Tensor, *, temperature: float, seed: tf.Tensor) -> tf.Tensor:
    """A random id per row, drawn from softmax(logits / temperature): [batch, vocab] -> [batch].

    `seed` is an int32 [2] tensor; the same seed and logits always give the same ids.
    """
    scaled = apply_temperature(logits, temperature)
    return tf.random.stateless_categorical(scaled, 1, seed=seed, dtype=tf.int32)[:, 0]


def choose_strategy(temperature: float):
    """Temperature 0 means 'always the most likely character'."""
    return greedy if temperature == 0 else sample


def generate_text(
    model: keras.Model, vocabulary: Vocabulary, *, seed_text: str, length: int, temperature: float, seed: int
) -> Iterator[str]:
    """Yields `length` characters that continue `seed_text`, one at a time, as they are sampled.

    `model` is the batch-1 stateful build. Its state is reset, primed by running the whole
    seed text once, and then carried from step to step: each new character costs one LSTM step,
    never a rerun of the prefix. Character i is drawn with the stateless seed (seed, i), so the
    same seed always gives the same text.
    """
    unknown = vocabulary.unknown_chars(seed_text)
    if unknown:
        listed = ", ".join(repr(c) for c in unknown)
        raise UserError(f"the seed text has characters the model never saw in training: {listed}; leave them out")
    if not seed_text:
        raise UserError("the seed text is empty; give at least one character, e.g. --seed_text='The '")
    choose_next_id = choose_strategy(temperature)

    @tf.function(input_signature=[tf.TensorSpec([1, None], tf.int32), tf.TensorSpec([2], tf.int32)])
    def next_id(ids, step_seed):
        logits = model(ids, training=False)[:, -1, :]  # [1, vocab]
        # Id 0 stands for "a character not seen in training": never worth generating.
        logits = tf.cast(logits, tf.float32) - 1e9 * tf.one_hot([OOV_ID], vocabulary.size)
        return choose_next_id(logits, temperature=temperature, seed=step_seed)  # [1]

    reset_states(model)
    return _sample_characters(next_id, vocabulary, seed_text=seed_text, length=length, seed=seed)


def _sample_characters(next_id, vocabulary: Vocabulary, *, seed_text: str, length: int, seed: int) -> Iterator[str]:
    ids = vocabulary.encode(seed_text)[tf.newaxis, :]  # [1, len(seed_text)]: primes the state in one call
    for step in range(length):
        ids = next_id(ids, tf.constant([seed, step], tf.int32))[tf.newaxis, :]  # [1, 1]
        yield vocabulary.decode(ids)
