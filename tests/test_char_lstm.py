import numpy as np

from config import Config
import pytest
import tensorflow as tf

from models.char_lstm import build_model, initial_step_state, logits_and_state, lstm_units, reset_states, step, step_weights

CONFIG = Config(embedding_dim=8, rnn_units=16)
VOCAB_SIZE = 11


def test_training_model_gives_logits_for_every_position():
    model = build_model(CONFIG.model, VOCAB_SIZE)
    logits = model(np.zeros([4, 7], np.int32))
    assert logits.shape == (4, 7, VOCAB_SIZE)
    assert model.count_params() == (
        VOCAB_SIZE * 8  # embedding
        + 4 * 16 * (8 + 16 + 1)  # lstm_1: input, recurrent and bias weights of four gates
        + 4 * 16 * (16 + 16 + 1)  # lstm_2
        + (16 + 1) * VOCAB_SIZE  # logits
    )


def test_stateful_model_continues_where_the_last_call_stopped():
    trained = build_model(CONFIG.model, VOCAB_SIZE)
    stateful = build_model(CONFIG.model, VOCAB_SIZE, batch_size=1, stateful=True)
    stateful.set_weights(trained.get_weights())
    prefix = np.array([[3, 1, 4, 1, 5, 9, 2, 6]], np.int32)

    whole_prefix = trained(prefix).numpy()[0, -1]
    reset_states(stateful)
    for position in range(prefix.shape[1]):
        one_step = stateful(prefix[:, position : position + 1]).numpy()[0, -1]

    np.testing.assert_allclose(one_step, whole_prefix, atol=1e-5)


def test_reset_states_starts_a_new_text():
    stateful = build_model(CONFIG.model, VOCAB_SIZE, batch_size=1, stateful=True)
    first = stateful(np.array([[2]], np.int32)).numpy()
    carried_on = stateful(np.array([[2]], np.int32)).numpy()
    reset_states(stateful)
    fresh = stateful(np.array([[2]], np.int32)).numpy()
    assert not np.allclose(first, carried_on)
    np.testing.assert_allclose(fresh, first, atol=1e-6)


def test_one_step_at_a_time_gives_the_models_own_logits():
    model = build_model(CONFIG.model, VOCAB_SIZE)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])  # biases too
    prefix = np.array([[3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8, 1, 8]], np.int32)
    weights = step_weights(model)

    state = initial_step_state(weights, batch_size=2)
    stepped = []
    for position in range(prefix.shape[1]):
        logits, state = step(weights, prefix[:, position], state)
        stepped.append(logits.numpy())

    np.testing.assert_allclose(np.stack(stepped, axis=1), model(prefix).numpy(), atol=1e-5)


@pytest.mark.parametrize("fast_cpu_lstm", [False, True], ids=["keras LSTM", "fast LSTM"])
def test_a_window_that_continues_from_the_last_ones_state_scores_as_one_long_window(fast_cpu_lstm):
    model = build_model(CONFIG.model, VOCAB_SIZE, fast_cpu_lstm=fast_cpu_lstm)
    text = np.random.default_rng(0).integers(0, VOCAB_SIZE, size=(32, 12)).astype(np.int32)  # two groups of rows on 2 cores
    empty = tuple((tf.zeros([32, units]), tf.zeros([32, units])) for units in lstm_units(model))

    first, state = logits_and_state(model, text[:, :6], empty, training=False)
    second, _ = logits_and_state(model, text[:, 6:], state, training=False)

    np.testing.assert_allclose(first, model(text[:, :6]), atol=1e-5)  # an empty state is the model's own start
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), model(text), atol=1e-5)
    assert not any(layer.return_state for layer in model.layers if hasattr(layer, "return_state"))  # as built
