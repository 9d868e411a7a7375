"""build_model(): the only place the network's layers are declared."""

import keras
import tensorflow as tf

from config import Config


def build_model(cfg: Config, vocab_size: int, *, batch_size: int | None = None, stateful: bool = False) -> keras.Model:
    """Embedding -> LSTM -> LSTM -> Dense: int ids [batch, time] -> logits [batch, time, vocab_size].

    Training uses the defaults (any batch size, fresh state per batch). Generation uses
    batch_size=1, stateful=True, so each call continues from the state the previous call left;
    Keras needs a fixed batch size for that. Both builds hold the same weights, so weights saved
    from one load into the other.

    The LSTMs keep Keras' default activations, no recurrent dropout and unroll=False: the
    settings that let TensorFlow run them with the fused cuDNN kernel on a GPU.
    """
    # Dropout layers hold no weights, so builds with and without them share weight files; they
    # are left out when unused to keep the generation model minimal.
    def dropout(name):
        return [keras.layers.Dropout(cfg.dropout, name=name)] if cfg.dropout else []

    return keras.Sequential(
        [
            keras.Input(batch_shape=(batch_size, None), dtype="int32"),
            keras.layers.Embedding(vocab_size, cfg.embedding_dim, name="embedding"),
            keras.layers.LSTM(cfg.rnn_units, return_sequences=True, stateful=stateful, name="lstm_1"),
            *dropout("dropout_1"),
            keras.layers.LSTM(cfg.rnn_units, return_sequences=True, stateful=stateful, name="lstm_2"),
            *dropout("dropout_2"),
            # Logits in float32 even under a mixed-precision policy: softmax and loss need the range.
            keras.layers.Dense(vocab_size, dtype="float32", name="logits"),
        ],
        name="char_lstm",
    )


def reset_states(model: keras.Model) -> None:
    """Zeroes the recurrent state of a stateful model, so the next call starts a new text."""
    for layer in _lstm_layers(model):
        layer.reset_state()


def read_states(model: keras.Model) -> list[tuple[tf.Tensor, tf.Tensor]]:
    """The (h, c) state of each LSTM of a stateful model, each [batch, rnn_units]."""
    return [(layer.states[0].value, layer.states[1].value) for layer in _lstm_layers(model)]


def write_states(model: keras.Model, states: list[tuple[tf.Tensor, tf.Tensor]]) -> None:
    for layer, (h, c) in zip(_lstm_layers(model), states):
        layer.states[0].assign(h)
        layer.states[1].assign(c)


def step_with_state(model: keras.Model, ids: tf.Tensor, states: list[tuple[tf.Tensor, tf.Tensor]]):
    """One character per row through `model`'s layers, the state passed in and out instead of kept inside.

    ids [batch] int32 -> logits [batch, vocab], new states. The same arithmetic as calling the
    stateful model on ids[:, None], without Keras' per-call sequence machinery, so that a compiled
    loop of these steps runs at the speed of its matrix products.
    """
    x = model.get_layer("embedding")(ids)  # [batch, embedding_dim]
    new_states = []
    for layer, (h, c) in zip(_lstm_layers(model), states):
        x, (h, c) = layer.cell(x, [h, c])  # x: [batch, rnn_units]
        new_states.append((h, c))
    return model.get_layer("logits")(x), new_states


def _lstm_layers(model: keras.Model) -> list[keras.layers.LSTM]:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]
