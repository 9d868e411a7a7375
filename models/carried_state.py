"""The LSTM state that training and validation carry from one batch to the next when batches are streams (--stream_windows).

Each replica of a tf.distribute strategy reads its own rows of every batch (datasets.worker_batches), so each
keeps the state of its own rows: in variables synchronized on read, which hold one value per replica.
The state is not checkpointed: a resumed run starts its streams' next windows from an empty state, which
costs about what one window's first characters do.
"""

import keras
import tensorflow as tf

from models import char_lstm


class CarriedState:
    """Each LSTM's (h, c) for one replica's `rows` batch rows, carried from call to call.

    Make it in the strategy's scope; call `logits` in a replica context (strategy.run), once per batch in stream order.
    """

    def __init__(self, model: keras.Model, *, rows: int):
        def variable(units):
            return tf.Variable(
                tf.zeros([rows, units]),
                trainable=False,
                synchronization=tf.VariableSynchronization.ON_READ,
                aggregation=tf.VariableAggregation.NONE,
            )

        self._model = model
        self._state = tuple((variable(units), variable(units)) for units in char_lstm.lstm_units(model))

    def logits(self, ids: tf.Tensor, carried: tf.Tensor, *, training: bool) -> tf.Tensor:
        """The model's logits for ids [rows, time], each row continuing from the state its last call left where
        carried [rows] is 1, from an empty state where it is 0 (a stream's first window)."""
        keep = carried[:, None]
        state = tuple((h * keep, c * keep) for h, c in self._state)
        logits, end_state = char_lstm.logits_and_state(self._model, ids, state, training=training)
        for (h_variable, c_variable), (h, c) in zip(self._state, end_state):
            h_variable.assign(tf.cast(h, tf.float32))
            c_variable.assign(tf.cast(c, tf.float32))
        return logits
