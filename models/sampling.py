"""Choosing the next character (small functions, one per strategy) and the compiled loop that generates text."""

import functools
from collections.abc import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from errors import UserError
from models.char_lstm import StepState, StepWeights, initial_step_state, step, step_weights
from pipeline.vocab import OOV_ID, Vocabulary

# Characters sampled per compiled call, per sample; each call's characters are streamed out
# together. The first chunk is short so text appears at once; chunks then double, because every call
# has a fixed cost of a few characters (passing the arguments in, a slower first step: bench/README.md),
# up to MAX_CHUNK_CHARS characters of all samples together.
FIRST_CHUNK_SIZE = 32
MAX_CHUNK_CHARS = 1024

NextIdFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]  # (logits [batch, vocab], seed int32 [2]) -> ids [batch]


def apply_temperature(logits: tf.Tensor, temperature: float) -> tf.Tensor:
    """Logits [batch, vocab] divided by the temperature, in float32 whatever the model's precision."""
    return tf.cast(logits, tf.float32) / temperature


def keep_top_k(logits: tf.Tensor, k: int) -> tf.Tensor:
    """Logits [batch, vocab] with all but the k largest per row set to -inf (ties with the k-th are kept).

    A k of the vocabulary's size or more keeps every id: the top 500 of 80 characters are all 80.
    """
    k = min(k, logits.shape[-1])  # the width is static, as XLA needs k to be
    kth_largest = tf.math.top_k(logits, k=k).values[:, -1:]  # [batch, 1]
    return tf.where(logits < kth_largest, -np.inf, logits)


def keep_top_p(logits: tf.Tensor, p: float) -> tf.Tensor:
    """Logits [batch, vocab] keeping per row the most likely ids whose probabilities first add up to p (nucleus)."""
    sorted_logits = tf.sort(logits, direction="DESCENDING")
    probability_before = tf.cumsum(tf.nn.softmax(sorted_logits), axis=-1, exclusive=True)
    # The most likely id always survives (its probability_before is 0).
    smallest_kept = tf.reduce_min(tf.where(probability_before < p, sorted_logits, np.inf), axis=-1, keepdims=True)
    return tf.where(logits < smallest_kept, -np.inf, logits)


def greedy(logits: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """The most likely id per row: logits [batch, vocab] -> ids [batch]. The seed plays no part."""
    del seed
    return tf.argmax(logits, axis=-1, output_type=tf.int32)


def sample(logits: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """An id per row drawn from softmax(logits): [batch, vocab] -> [batch]; the same seed gives the same ids.

    Gumbel-max: the argmax of logits plus Gumbel noise. The noise comes from uniform_noise, not
    tf.random, whose XLA and plain-TensorFlow kernels draw different numbers from the same seed:
    this way the compiled loop and the exported SavedModel write the same text for the same seed.
    """
    uniform = uniform_noise(tf.shape(logits), seed)
    return tf.argmax(logits - tf.math.log(-tf.math.log(uniform)), axis=-1, output_type=tf.int32)


def uniform_noise(shape: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Floats in (0, 1) of `shape`, a function of the int32 seed [2] alone, bit for bit the same with or without XLA.

    Each element's index is hashed with the seed by integer operations only (the MurmurHash3
    finalizer), whose results XLA and TensorFlow's own kernels agree on.
    """
    seed = tf.bitcast(tf.cast(seed, tf.int32), tf.uint32)
    golden_ratio = tf.constant(0x9E3779B9, tf.uint32)  # made here: a module-level tensor would start TensorFlow at import
    key = _mix(seed[1] + _mix(seed[0] + golden_ratio))
    index = tf.bitcast(tf.range(tf.reduce_prod(shape), dtype=tf.int32), tf.uint32)
    bits = _mix(index * golden_ratio + key)
    uniform = (tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) + 0.5) * 2.0**-24  # 24 bits: exact in float32
    return tf.reshape(uniform, shape)


def _mix(x: tf.Tensor) -> tf.Tensor:
    """MurmurHash3's 32-bit finalizer: every input bit flips each output bit with probability about 1/2."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16)) * tf.constant(0x85EBCA6B, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 13)) * tf.constant(0xC2B2AE35, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def make_next_id_fn(*, temperature: float, top_k: int = 0, top_p: float = 1.0) -> NextIdFn:
    """The strategy the settings ask for: temperature 0 is greedy; otherwise temperature, then top-k, then top-p.

    The same settings give the same function, so the loop compiled for it is reused (_compiled_chunk).
    """
    return _next_id_fn(float(temperature), int(top_k), float(top_p))


@functools.lru_cache(maxsize=64)
def _next_id_fn(temperature: float, top_k: int, top_p: float) -> NextIdFn:
    if temperature == 0:
        return greedy

    def next_id(logits, seed):
        logits = apply_temperature(logits, temperature)
        if top_k:
            logits = keep_top_k(logits, top_k)
        if top_p < 1.0:
            logits = keep_top_p(logits, top_p)
        return sample(logits, seed)

    return next_id


def prime(weights: StepWeights, seed_ids: tf.Tensor) -> tuple[tf.Tensor, StepState]:
    """Reads seed_ids [batch, seed_len >= 1] from the empty state: the logits [batch, vocab] after the last id, and the state."""
    logits, state = step(weights, seed_ids[:, 0], initial_step_state(weights, tf.shape(seed_ids)[0]))

    def read_one(t, logits, state):
        logits, state = step(weights, seed_ids[:, t], state)
        return t + 1, logits, state

    _, logits, state = tf.while_loop(lambda t, *_: t < tf.shape(seed_ids)[1], read_one, (tf.constant(1), logits, state))
    return logits, state


def sample_ids(
    weights: StepWeights, logits: tf.Tensor, state: StepState, *, next_id: NextIdFn, seed, first_position, num_steps, capacity
) -> tuple[tf.Tensor, tf.Tensor, StepState]:
    """The generation loop: `num_steps` ids per row, each drawn from the logits the previous one led to.

    logits [batch, vocab] and `state` are where the text so far left the model. The id at position
    first_position + i is drawn with the stateless seed (seed, first_position + i), so the text
    never depends on how it is cut into loops. Returns ids [batch, capacity] (zeros after
    num_steps; a fixed capacity keeps shapes static for XLA), then the logits and state after them.
    """
    never = -1e9 * tf.one_hot(OOV_ID, tf.shape(logits)[-1])  # the id of "a character unseen in training"
    seed = tf.cast(seed, tf.int32)
    ids = tf.TensorArray(tf.int32, size=capacity, element_shape=logits.shape[:1])

    def one_step(i, logits, state, ids):
        next_ids = next_id(logits + never, tf.stack([seed, first_position + i]))
        logits, state = step(weights, next_ids, state)
        return i + 1, logits, state, ids.write(i, next_ids)

    _, logits, state, ids = tf.while_loop(lambda i, *_: i < num_steps, one_step, (tf.constant(0), logits, state, ids))
    return tf.transpose(ids.stack()), logits, state


# Not XLA-compiled: XLA would compile again for every new length of seed text.
_compiled_prime = tf.function(prime, reduce_retracing=True)


@functools.lru_cache(maxsize=64)
def _compiled_chunk(next_id: NextIdFn):
    """sample_ids for up to MAX_CHUNK_CHARS ids per row, XLA-compiled once per strategy (and per model size and batch)."""

    @tf.function(jit_compile=True)
    def sample_chunk(weights, logits, state, seed, first_position, num_steps):
        return sample_ids(
            weights, logits, state, next_id=next_id, seed=seed, first_position=first_position, num_steps=num_steps, capacity=MAX_CHUNK_CHARS
        )

    return sample_chunk


def generate_ids(
    model: keras.Model, seed_ids: np.ndarray, *, length: int, next_id: NextIdFn, seed: int
) -> Iterator[np.ndarray]:
    """Yields chunks of generated ids [batch, <= MAX_CHUNK_CHARS] continuing each row of seed_ids [batch, seed_len].

    `model` is any build of build_model; its current weights are used. The seed is read once, then
    the state is carried from character to character: each new character costs one step of the
    LSTMs (char_lstm.step), never a rerun of the prefix. The steps of a chunk run in one compiled
    loop, compiled on the first call only.
    """
    weights = step_weights(model)
    logits, state = _compiled_prime(weights, tf.constant(seed_ids, tf.int32))
    sample_chunk = _compiled_chunk(next_id)
    seed_bits = tf.constant(np.uint32(seed % 2**32).view(np.int32))  # any Python int; 0 to 2**31 - 1 stay as they are
    first_position, chunk_size = 0, FIRST_CHUNK_SIZE
    max_chunk_size = max(FIRST_CHUNK_SIZE, MAX_CHUNK_CHARS // len(seed_ids))
    while first_position < length:
        num_steps = min(chunk_size, length - first_position)
        ids, logits, state = sample_chunk(weights, logits, state, seed_bits, tf.constant(first_position), tf.constant(num_steps))
        yield ids.numpy()[:, :num_steps]
        first_position, chunk_size = first_position + num_steps, min(2 * chunk_size, max_chunk_size)


def generate_samples(
    model: keras.Model,
    vocabulary: Vocabulary,
    *,
    seed_text: str,
    length: int,
    temperature: float,
    seed: int,
    num_samples: int = 1,
    top_k: int = 0,
    top_p: float = 1.0,
    stop_at: str = "",
    allow_unknown: bool = False,
) -> Iterator[list[str]]:
    """Yields, chunk by chunk, the new text of each sample: `num_samples` strings, generated together.

    `model` is any build of build_model (see generate_ids); all samples continue the same `seed_text`. A sample ends after `length` characters or just after
    the first `stop_at` it writes; generation stops once every sample has ended. Raises UserError
    at once, before any text, if the seed text is empty or, unless `allow_unknown` (which maps them
    to the out-of-vocabulary id), has characters the model never saw.
    """
    if not seed_text:
        raise UserError("the seed text is empty; give at least one character, e.g. --seed_text='The '")
    unknown = vocabulary.unknown_chars(seed_text)
    if unknown and not allow_unknown:
        listed = ", ".join(repr(c) for c in unknown)
        raise UserError(
            f"the seed text has characters the model never saw in training: {listed}; "
            "leave them out, or pass --allow_unknown to read them as 'unknown character'"
        )
    seed_ids = np.tile(vocabulary.encode(seed_text).numpy(), [num_samples, 1])  # [num_samples, len(seed_text)]
    next_id = make_next_id_fn(temperature=temperature, top_k=top_k, top_p=top_p)
    chunks = generate_ids(model, seed_ids, length=length, next_id=next_id, seed=seed)
    return stop_samples_at(([vocabulary.decode(row) for row in chunk] for chunk in chunks), stop_at=stop_at)


def generate_text(model: keras.Model, vocabulary: Vocabulary, **settings) -> Iterator[str]:
    """Yields the text that continues `seed_text`, a few characters at a time, as it is sampled.

    The one-sample case of generate_samples, with the same settings.
    """
    return (texts[0] for texts in generate_samples(model, vocabulary, **settings))


def stop_samples_at(chunks: Iterator[list[str]], *, stop_at: str) -> Iterator[list[str]]:
    """Chunks of each sample's text, cut just after its first `stop_at`; ends when every sample has stopped."""
    if not stop_at:
        yield from chunks
        return
    written: list[str] = []
    ended: list[bool] = []
    for chunk in chunks:
        if not written:
            written, ended = [""] * len(chunk), [False] * len(chunk)
        new_texts = []
        for i, new_text in enumerate(chunk):
            if ended[i]:
                new_texts.append("")
                continue
            # A stop string may straddle two chunks, so the search starts just before this chunk.
            text = written[i] + new_text
            found = text.find(stop_at, max(0, len(written[i]) - len(stop_at) + 1))
            if found >= 0:
                new_text, ended[i] = text[len(written[i]) : found + len(stop_at)], True
            written[i] += new_text
            new_texts.append(new_text)
        yield new_texts
        if all(ended):
            return
