"""Generation speed of the default-size model (2x512 LSTM, embedding 256, 100 ids; random weights).

Prints one JSON line: our compiled loop with one sample and with 64 samples at once, the ceiling
for one sample (a compiled loop of only the matrix products a character needs), the exported
SavedModel's `generate` signature (no XLA), against the common approaches measured in the same
run: model.predict once per character, a Python loop calling a tf.function step of the stateful
Keras model (ids in, ids out: the lean version), and the TensorFlow tutorial's OneStep loop
(characters in and out as strings). Other programs on the machine add noise: compare numbers of
the same run.

    python bench/generate.py [--length=2000]
"""

import json
import pathlib
import platform
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import cli  # noqa: E402

cli.import_tensorflow_quietly()  # before the imports below start TensorFlow, with its C++ chatter

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from config import Config, ModelSettings  # noqa: E402
from models.char_lstm import build_model, reset_states, step_weights  # noqa: E402
from models.sampling import FIRST_CHUNK_SIZE, MAX_CHUNK_CHARS, generate_ids, make_next_id_fn  # noqa: E402
from models.serving import SIGNATURE, save_generation_model  # noqa: E402
from pipeline.vocab import build_vocabulary  # noqa: E402

flags.DEFINE_integer("length", 2000, "Characters per sample for our generator.")
flags.DEFINE_integer("baseline_length", 300, "Characters for the Python step loop (model.predict gets a tenth).")
FLAGS = flags.FLAGS
VOCAB_SIZE = 100


def chars_per_sec_of_ours(batch_size: int, length: int, repeats: int = 3, *, settings: ModelSettings | None = None) -> float:
    """Characters per second after the first chunk (the first call pays for compiling the loop); the best of `repeats`.

    The default-size model unless `settings` give another (bench/web.py measures the demo size too).
    """
    model = build_model(settings or Config().model, VOCAB_SIZE)
    seed_ids = np.random.default_rng(0).integers(1, VOCAB_SIZE, size=(batch_size, 20))
    best = 0.0
    for seed in range(repeats):
        chunks = generate_ids(model, seed_ids, length=length, next_id=make_next_id_fn(temperature=0.8), seed=seed)
        next(chunks)
        start = time.perf_counter()
        generated = sum(chunk.size for chunk in chunks)
        best = max(best, generated / (time.perf_counter() - start))
    return best


def steps_per_sec_of_products_alone(steps: int = 2000, repeats: int = 3) -> float:
    """The ceiling for one sample: a compiled loop of only the matrix products one character needs.

    The same matrices as char_lstm.step (12.4 MB of float32 for the default model), each product
    fed by the one before so none can be skipped, and nothing else: no LSTM cell, no sampling.
    """
    weights = step_weights(build_model(Config().model, VOCAB_SIZE))
    first, last = weights.outgoing
    units = weights.units[0]

    @tf.function(jit_compile=True)
    def products(h):
        def one_step(i, h):
            both = tf.matmul(h, first)
            h = tf.tanh(both[:, :units] + both[:, -units:])
            logits = tf.matmul(h, weights.logits_kernel)
            return i + 1, tf.tanh(tf.matmul(h, last)[:, :units] + tf.reduce_sum(logits))

        return tf.while_loop(lambda i, h: i < steps, one_step, (0, h))[1]

    h = tf.zeros([1, units])
    products(h).numpy()
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        products(h).numpy()
        best = max(best, steps / (time.perf_counter() - start))
    return best


def chars_per_sec_of_saved_model(length: int) -> float:
    """One sample through the exported signature, as TF Serving would run it (the second call: the first traces)."""
    vocabulary = build_vocabulary(["".join(chr(code) for code in range(33, 33 + VOCAB_SIZE - 1))])
    with tempfile.TemporaryDirectory() as directory:
        save_generation_model(directory, build_model(Config().model, vocabulary.size), vocabulary)
        generate = tf.saved_model.load(directory).signatures[SIGNATURE]
        inputs = dict(seed_text=tf.constant("It was "), temperature=tf.constant(0.8), seed=tf.constant(1))
        generate(length=tf.constant(10), **inputs)
        start = time.perf_counter()
        generate(length=tf.constant(length), **inputs)["generated_text"].numpy()
        return length / (time.perf_counter() - start)


def chars_per_sec_of_step_loop(length: int, repeats: int = 3) -> float:
    """The best of `repeats`, as for ours."""
    model = build_model(Config().model, VOCAB_SIZE, batch_size=1, stateful=True)

    @tf.function
    def step(ids):
        logits = model(ids, training=False)[:, -1, :] / 0.8
        return tf.random.categorical(logits, 1, dtype=tf.int32)

    best = 0.0
    for _ in range(repeats):
        reset_states(model)
        ids = step(tf.constant([[1]], tf.int32))
        start = time.perf_counter()
        for _ in range(length):
            ids = step(ids)
        best = max(best, length / (time.perf_counter() - start))
    return best


def chars_per_sec_of_tutorial_one_step(length: int, repeats: int = 3) -> float:
    """The TensorFlow "Text generation with an RNN" tutorial's OneStep loop, which many users copy.

    Characters in and out as strings (StringLookup both ways), a mask against the unknown id,
    tf.random.categorical; the stateful model keeps the state the tutorial passes by hand. The best of `repeats`.
    """
    model = build_model(Config().model, VOCAB_SIZE, batch_size=1, stateful=True)
    ids_from_chars = keras.layers.StringLookup(vocabulary=[chr(code) for code in range(33, 33 + VOCAB_SIZE - 1)], mask_token=None)
    chars_from_ids = keras.layers.StringLookup(vocabulary=ids_from_chars.get_vocabulary(), invert=True, mask_token=None)
    mask = -1e9 * tf.one_hot(0, VOCAB_SIZE)

    @tf.function
    def generate_one_step(inputs):
        input_ids = ids_from_chars(tf.strings.unicode_split(inputs, "UTF-8")).to_tensor()
        logits = model(input_ids, training=False)[:, -1, :] / 0.8 + mask
        return chars_from_ids(tf.squeeze(tf.random.categorical(logits, 1), -1))

    best = 0.0
    for _ in range(repeats):
        reset_states(model)
        next_char = generate_one_step(tf.constant(["R"]))
        start = time.perf_counter()
        result = [next_char]
        for _ in range(length):
            next_char = generate_one_step(next_char)
            result.append(next_char)
        tf.strings.join(result).numpy()
        best = max(best, length / (time.perf_counter() - start))
    return best


def chars_per_sec_of_predict(length: int) -> float:
    model = build_model(Config().model, VOCAB_SIZE, batch_size=1, stateful=True)
    rng = np.random.default_rng(0)
    ids = np.array([[1]], np.int32)
    model.predict(ids, verbose=0)
    start = time.perf_counter()
    for _ in range(length):
        logits = model.predict(ids, verbose=0)[0, -1] / 0.8
        probabilities = np.exp(logits - logits.max())
        ids = np.array([[rng.choice(VOCAB_SIZE, p=probabilities / probabilities.sum())]], np.int32)
    return length / (time.perf_counter() - start)


def main(argv):
    del argv
    results = {
        "benchmark": "generate",
        "model": "embedding 256, 2x512 LSTM, 100 ids",
        "chunk_sizes": f"{FIRST_CHUNK_SIZE} doubling to {MAX_CHUNK_CHARS} characters of all samples",
        "batch1_chars_per_sec": round(chars_per_sec_of_ours(1, FLAGS.length)),
        "batched64_chars_per_sec": round(chars_per_sec_of_ours(64, FLAGS.length // 4)),
        "products_alone_steps_per_sec": round(steps_per_sec_of_products_alone()),
        "saved_model_batch1_chars_per_sec": round(chars_per_sec_of_saved_model(FLAGS.length)),
        "step_loop_chars_per_sec": round(chars_per_sec_of_step_loop(FLAGS.baseline_length)),
        "tutorial_one_step_chars_per_sec": round(chars_per_sec_of_tutorial_one_step(FLAGS.baseline_length)),
        "predict_per_char_chars_per_sec": round(chars_per_sec_of_predict(FLAGS.baseline_length // 10), 1),
        "tensorflow": tf.__version__,
        "machine": f"{platform.machine()}, {len(tf.config.list_physical_devices('CPU'))} CPU device(s), {platform.python_version()}",
    }
    results["batch1_vs_step_loop"] = round(results["batch1_chars_per_sec"] / results["step_loop_chars_per_sec"], 1)
    results["products_alone_vs_step_loop"] = round(results["products_alone_steps_per_sec"] / results["step_loop_chars_per_sec"], 1)
    print(json.dumps(results))


if __name__ == "__main__":
    app.run(main)
