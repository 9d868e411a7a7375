"""build_model(): the only place the network's layers are declared."""

import keras

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
    return keras.Sequential(
        [
            keras.Input(batch_shape=(batch_size, None), dtype="int32"),
            keras.layers.Embedding(vocab_size, cfg.embedding_dim, name="embedding"),
            keras.layers.LSTM(cfg.rnn_units, return_sequences=True, stateful=stateful, name="lstm_1"),
            keras.layers.LSTM(cfg.rnn_units, return_sequences=True, stateful=stateful, name="lstm_2"),
            keras.layers.Dense(vocab_size, name="logits"),
        ],
        name="char_lstm",
    )


def reset_states(model: keras.Model) -> None:
    """Zeroes the recurrent state of a stateful model, so the next call starts a new text."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.RNN):
            layer.reset_state()
