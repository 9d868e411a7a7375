"""A SavedModel that generates text in plain TensorFlow or TF Serving, with no charbook code at load time.

The vocabulary, the weights and the generation loop are all inside it:

    generate = tf.saved_model.load("exports/demo/saved_model").signatures["generate"]
    generate(seed_text=tf.constant("It was "), length=tf.constant(200),
             temperature=tf.constant(0.8), seed=tf.constant(1))["generated_text"]

It samples exactly as models/sampling.py does (greedy at temperature 0, otherwise the stateless
seed (seed, position) per character), so it writes the same text as generate.py for the same
settings. Characters the model never saw read as the out-of-vocabulary id: a signature cannot
stop to ask. It runs without XLA, which TF Serving does not enable by default.
"""

import contextlib
import logging
import os

import keras
import tensorflow as tf
from absl import logging as absl_logging

from models.char_lstm import step_weights
from models.sampling import apply_temperature, greedy, prime, sample, sample_ids
from pipeline.vocab import OOV_ID, OOV_TOKEN, Vocabulary

SIGNATURE = "generate"


class TextGenerationModule(tf.Module):
    """The `generate` signature: seed_text, length, temperature, seed -> generated_text (the characters after the seed)."""

    def __init__(self, model: keras.Model, vocabulary: Vocabulary, *, lowercase: bool = False):
        super().__init__(name="charbook_generator")
        self.lowercase = lowercase  # the model was trained on lower-cased text: read the seed the same way
        weights = step_weights(model)
        # Variables, not constants: the SavedModel keeps them in variables/ rather than inside its graph.
        tensors = weights._replace(units=())
        self.weight_variables = [tf.Variable(tensor, trainable=False) for tensor in tf.nest.flatten(tensors)]
        self._weights_layout = tf.nest.map_structure(lambda _: None, tensors)  # where each variable goes back, without a second copy
        self.units = weights.units
        chars = tf.constant(vocabulary.chars)
        ids = tf.range(1, vocabulary.size, dtype=tf.int32)  # chars[i] has id i + 1 (pipeline/vocab.py)
        self.chars_to_ids = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(chars, ids), default_value=OOV_ID)
        self.id_to_char = tf.constant((OOV_TOKEN, *vocabulary.chars))

    @tf.function(
        input_signature=[
            tf.TensorSpec([], tf.string, name="seed_text"),
            tf.TensorSpec([], tf.int32, name="length"),
            tf.TensorSpec([], tf.float32, name="temperature"),
            tf.TensorSpec([], tf.int32, name="seed"),
        ]
    )
    def generate(self, seed_text, length, temperature, seed):
        checks = [
            tf.debugging.assert_positive(tf.strings.length(seed_text), message="seed_text is empty; give at least one character"),
            tf.debugging.assert_non_negative(length, message="length must be 0 or more characters"),
            tf.debugging.assert_non_negative(temperature, message="temperature must be 0 (greedy) or more"),
        ]
        if self.lowercase:
            seed_text = tf.strings.lower(seed_text, encoding="utf-8")
        with tf.control_dependencies(checks):
            seed_ids = self.chars_to_ids.lookup(tf.strings.unicode_split(seed_text, "UTF-8"))[tf.newaxis]  # [1, seed_len]
        weights = tf.nest.pack_sequence_as(self._weights_layout, self.weight_variables)._replace(units=self.units)

        def next_id(logits, position_seed):
            return tf.cond(
                temperature > 0,
                lambda: sample(apply_temperature(logits, temperature), position_seed),
                lambda: greedy(logits, position_seed),
            )

        logits, state = prime(weights, seed_ids)
        ids, _, _ = sample_ids(
            weights, logits, state, next_id=next_id, seed=seed, first_position=0, num_steps=length, capacity=length
        )
        return {"generated_text": tf.strings.reduce_join(tf.gather(self.id_to_char, ids[0]))}


def save_generation_model(
    directory: str | os.PathLike, model: keras.Model, vocabulary: Vocabulary, *, lowercase: bool = False
) -> None:
    """Writes the SavedModel of `model`'s current weights and `vocabulary` into `directory`."""
    module = TextGenerationModule(model, vocabulary, lowercase=lowercase)
    try:
        with _info_logs_off():
            tf.saved_model.save(module, os.fspath(directory), signatures={SIGNATURE: module.generate})
    except tf.errors.OpError as error:  # TensorFlow's file errors (a full disk, no permission) are not OSErrors
        raise OSError(f"cannot write the SavedModel to {directory}: {error.message}") from None


@contextlib.contextmanager
def _info_logs_off():
    """Keeps the saver's INFO lines ("Assets written to ...", "Writing fingerprint ...") out of train.py's output."""
    tensorflow_logger = logging.getLogger("tensorflow")
    saved = tensorflow_logger.level, absl_logging.get_verbosity()
    tensorflow_logger.setLevel(logging.WARNING)
    absl_logging.set_verbosity(absl_logging.WARNING)
    try:
        yield
    finally:
        tensorflow_logger.setLevel(saved[0])
        absl_logging.set_verbosity(saved[1])
