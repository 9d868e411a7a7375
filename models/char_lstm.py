"""build_model(): the only place the network's layers are declared; and its arithmetic for one character at a time."""

from typing import NamedTuple

import keras
import tensorflow as tf

from config import ModelSettings
from models import fast_lstm


def build_model(
    settings: ModelSettings,
    vocab_size: int,
    *,
    batch_size: int | None = None,
    stateful: bool = False,
    fast_cpu_lstm: bool = False,
) -> keras.Model:
    """Embedding -> LSTM -> LSTM -> Dense: int ids [batch, time] -> logits [batch, time, vocab_size].

    Training uses the defaults (any batch size, fresh state per batch). With a fixed batch_size and
    stateful=True each call continues from the state the previous call left. All builds hold the
    same weights, so weights saved from one load into another. Generation does not call the model:
    it reads its weights into step_weights and runs `step`, the same arithmetic one character at a time.

    The LSTMs keep Keras' default activations, no recurrent dropout and unroll=False: the
    settings that let TensorFlow run them with the fused cuDNN kernel on a GPU. fast_cpu_lstm=True
    (training on a CPU, distribute.trains_on_cpu) builds models/fast_lstm.LSTM instead, Keras' LSTM
    with the same weights and a faster CPU training loop, in a fast_lstm.Sequential that hands the first one the ids
    (its input product becomes a lookup); generation builds (stateful) always get Keras' own.
    """
    fast = fast_cpu_lstm and not stateful
    lstm, sequential = (fast_lstm.LSTM, fast_lstm.Sequential) if fast else (keras.layers.LSTM, keras.Sequential)

    # Dropout layers hold no weights, so builds with and without them share weight files; they
    # are left out when unused to keep the generation model minimal.
    def dropout(name):
        return [keras.layers.Dropout(settings.dropout, name=name)] if settings.dropout else []

    return sequential(
        [
            keras.Input(batch_shape=(batch_size, None), dtype="int32"),
            keras.layers.Embedding(vocab_size, settings.embedding_dim, name="embedding"),
            lstm(settings.rnn_units, return_sequences=True, stateful=stateful, name="lstm_1"),
            *dropout("dropout_1"),
            lstm(settings.rnn_units, return_sequences=True, stateful=stateful, name="lstm_2"),
            *dropout("dropout_2"),
            # Logits in float32 even under a mixed-precision policy: softmax and loss need the range.
            keras.layers.Dense(vocab_size, dtype="float32", name="logits"),
        ],
        name="char_lstm",
    )


LSTMState = tuple[tuple[tf.Tensor, tf.Tensor], ...]  # per LSTM: (h, c), each [batch, units]


def logits_and_state(model: keras.Model, ids: tf.Tensor, state: LSTMState, *, training: bool) -> tuple[tf.Tensor, LSTMState]:
    """A training build (stateful=False) called on ids [batch, time] with each LSTM starting from `state` instead
    of an empty one: the logits, and the state each LSTM ends in (to carry into the next window of a stream)."""
    x, end_state, lstms = ids, [], iter(state)
    layers = model.layers
    for index, layer in enumerate(layers):
        if not isinstance(layer, keras.layers.LSTM):
            x = layer(x, training=training)
            continue
        # The first fast LSTM looks its input product up per id, as fast_lstm.Sequential has it do.
        after_embedding = isinstance(model, fast_lstm.Sequential) and isinstance(layer, fast_lstm.LSTM) and index == 1
        lookup = {"ids": ids, "embeddings": layers[0].embeddings} if after_embedding else {}
        # Keras' RNN returns its state when return_state is set at call time; the layers are built without it,
        # so that Sequential can chain them and weights load into every build, and set it for this call only.
        layer.return_state = True
        try:
            x, h, c = layer(x, initial_state=list(next(lstms)), training=training, **lookup)
        finally:
            layer.return_state = False
        end_state.append((h, c))
    return x, tuple(end_state)


def lstm_units(model: keras.Model) -> tuple[int, ...]:
    """The units of each LSTM of a build_model model, in order."""
    return tuple(layer.units for layer in _lstm_layers(model))


def reset_states(model: keras.Model) -> None:
    """Zeroes the recurrent state of a stateful model, so the next call starts a new text."""
    for layer in _lstm_layers(model):
        layer.reset_state()


class StepWeights(NamedTuple):
    """The model's weights rearranged for generation, where one character costs few, large matrix products.

    The first LSTM's input part, embedding @ kernel + bias, is looked up per id instead of
    multiplied. Each LSTM's new output h feeds two products, the next layer's input part and its
    own recurrent part for the next character: `outgoing[k]` holds both kernels side by side, so
    one product computes both. The last LSTM's h meets the logits kernel in a product of its own,
    which measured faster per character than one product of both kernels side by side (bench/README.md).
    """

    first_gates: tf.Tensor  # [vocab, 4 * units_1]
    outgoing: tuple[tf.Tensor, ...]  # per LSTM k: [units_k, 4 * units_k+1 + 4 * units_k], the next LSTM's kernel | own recurrent kernel; the last LSTM's: its recurrent kernel
    biases: tuple[tf.Tensor, ...]  # per LSTM after the first: its bias, added after the previous LSTM's product
    logits_kernel: tf.Tensor  # [units_last, vocab]
    logits_bias: tf.Tensor  # [vocab]
    units: tuple[int, ...]  # per LSTM; Python ints, so shapes stay known in a tf.function traced for any size


StepState = tuple[tuple[tf.Tensor, tf.Tensor], ...]  # per LSTM: (c [batch, units], h @ recurrent_kernel [batch, 4 * units])


def step_weights(model: keras.Model) -> StepWeights:
    """The current weights of a build_model model (any build) as StepWeights, in float32."""
    lstms = _lstm_layers(model)
    embeddings = tf.cast(model.get_layer("embedding").embeddings, tf.float32)
    first = lstms[0].cell
    first_gates = tf.matmul(embeddings, tf.cast(first.kernel, tf.float32)) + tf.cast(first.bias, tf.float32)
    recurrent_kernels = [layer.cell.recurrent_kernel for layer in lstms]
    next_kernels = [layer.cell.kernel for layer in lstms[1:]]
    side_by_side = [tf.concat([next_kernel, own], axis=1) for next_kernel, own in zip(next_kernels, recurrent_kernels)]
    outgoing = tuple(tf.cast(kernel, tf.float32) for kernel in [*side_by_side, recurrent_kernels[-1]])
    biases = tuple(tf.cast(layer.cell.bias, tf.float32) for layer in lstms[1:])
    logits = model.get_layer("logits")
    return StepWeights(
        first_gates, outgoing, biases, tf.cast(logits.kernel, tf.float32), tf.cast(logits.bias, tf.float32), units=tuple(layer.units for layer in lstms)
    )


def initial_step_state(weights: StepWeights, batch_size) -> StepState:
    """The empty state every text starts from (h = c = 0), for `batch_size` rows."""
    return tuple((tf.zeros([batch_size, units]), tf.zeros([batch_size, 4 * units])) for units in weights.units)


def step(weights: StepWeights, ids: tf.Tensor, state: StepState) -> tuple[tf.Tensor, StepState]:
    """One character per row: ids [batch] int32 -> logits [batch, vocab] and the new state.

    The same arithmetic as the stateful model called on ids[:, None] (Keras' LSTM cell: gates
    i, f, c, o; sigmoid and tanh), up to float rounding, at the cost of one matrix product per
    LSTM and one for the logits.
    """
    gates = tf.gather(weights.first_gates, ids)
    new_state = []
    for k, ((c, recurrent), outgoing, units) in enumerate(zip(state, weights.outgoing, weights.units)):
        input_gate, forget_gate, candidate, output_gate = tf.split(gates + recurrent, 4, axis=-1)
        c = tf.sigmoid(forget_gate) * c + tf.sigmoid(input_gate) * tf.tanh(candidate)
        h = tf.sigmoid(output_gate) * tf.tanh(c)
        both = tf.matmul(h, outgoing)
        new_state.append((c, both[:, -4 * units :]))
        if k < len(weights.biases):  # an LSTM follows
            gates = both[:, : -4 * units] + weights.biases[k]
    return tf.matmul(h, weights.logits_kernel) + weights.logits_bias, tuple(new_state)


def _lstm_layers(model: keras.Model) -> list[keras.layers.LSTM]:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]
