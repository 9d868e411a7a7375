"""models/fast_lstm.LSTM computes what keras.layers.LSTM computes, with the same weights, and its exports load into Keras' LSTM."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import distribute
import export
import optimization
import training
from config import Config
from models import compiled_lstm, fast_lstm
from models.char_lstm import build_model
from models.sampling import generate_text
from pipeline.vocab import build_vocabulary

CONFIG = Config(embedding_dim=8, rnn_units=16, seq_len=12)
VOCABULARY = build_vocabulary(["the quick brown fox jumps over the lazy dog\n"])
IDS = np.random.default_rng(0).integers(0, VOCABULARY.size, size=(3, 12)).astype(np.int32)


def stock_and_fast(**policy):
    """A model of keras.layers.LSTM and one of fast_lstm.LSTM holding the same (random, non-default) weights."""
    stock = build_model(CONFIG.model, VOCABULARY.size)
    fast = build_model(CONFIG.model, VOCABULARY.size, fast_cpu_lstm=True)
    rng = np.random.default_rng(1)
    stock.set_weights([rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in stock.get_weights()])
    fast.set_weights(stock.get_weights())
    return stock, fast


def loss_and_gradients(model):
    with tf.GradientTape() as tape:
        logits = model(IDS[:, :-1], training=True)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=IDS[:, 1:], logits=logits))
    return loss, tape.gradient(loss, model.trainable_variables)


def test_training_builds_the_fast_layer_on_cpu_and_generation_builds_keras_own():
    assert [type(layer) for layer in build_model(CONFIG.model, 20, fast_cpu_lstm=True).layers[1:3]] == [fast_lstm.LSTM] * 2
    assert [type(layer) for layer in build_model(CONFIG.model, 20).layers[1:3]] == [keras.layers.LSTM] * 2
    stateful = build_model(CONFIG.model, 20, batch_size=1, stateful=True, fast_cpu_lstm=True)
    assert [type(layer) for layer in stateful.layers[1:3]] == [keras.layers.LSTM] * 2


def test_same_variables_as_keras_lstm():
    stock, fast = stock_and_fast()
    assert [(w.path, w.shape) for w in fast.weights] == [(w.path, w.shape) for w in stock.weights]


def test_checkpoints_of_either_build_name_the_same_variables(tmp_path):
    # Training resumes on a CPU from a checkpoint a GPU wrote, and back (training.TrainingCheckpoints).
    stock, fast = stock_and_fast()
    names = [
        [name for name, _ in tf.train.list_variables(tf.train.Checkpoint(model=model).write(str(tmp_path / kind)))]
        for kind, model in (("stock", stock), ("fast", fast))
    ]
    assert names[0] == names[1]


def test_the_first_lstm_looks_its_input_product_up_per_id():
    # Keras' Embedding sends back one gradient row per character (IndexedSlices); the lookup in
    # embeddings @ kernel sends back the whole table's gradient, summed per id.
    stock, fast = stock_and_fast()
    assert isinstance(loss_and_gradients(stock)[1][0], tf.IndexedSlices)
    embedding_gradient = loss_and_gradients(fast)[1][0]
    assert isinstance(embedding_gradient, tf.Tensor) and embedding_gradient.shape == (VOCABULARY.size, CONFIG.embedding_dim)


# Where the compiled ops load (models/compiled_lstm) they run the loops. Without them, layers of up to
# XLA_LOOPS_UP_TO_UNITS run whole XLA-compiled loops, larger ones oneDNN's products step by step: the tiny test
# model (16 units) takes either when the limit is moved.
LOOPS = {"whole loops in XLA": 256, "oneDNN products per step": 0}


def use_loops(monkeypatch, loops):
    """Makes fast_lstm run `loops`: "compiled ops" (skips the test where they cannot load) or one of LOOPS."""
    if loops == "compiled ops":
        if compiled_lstm.load_ops() is None:
            pytest.skip(compiled_lstm.unavailable_reason())
    else:
        monkeypatch.setattr(compiled_lstm, "can_run", lambda units, dtype: False)
        monkeypatch.setattr(fast_lstm, "XLA_LOOPS_UP_TO_UNITS", LOOPS[loops])


@pytest.mark.parametrize("loops", [*LOOPS, "compiled ops"])
@pytest.mark.parametrize("cores", [1, 3])  # IDS' three rows in one loop, or one loop per row
def test_same_logits_and_gradients_as_keras_lstm_in_float32(monkeypatch, cores, loops):
    use_loops(monkeypatch, loops)
    monkeypatch.setattr(fast_lstm, "MIN_ROWS_PER_GROUP", 1)
    monkeypatch.setattr(fast_lstm, "cpu_cores", lambda: cores)
    stock, fast = stock_and_fast()
    stock_loss, stock_gradients = loss_and_gradients(stock)
    fast_loss, fast_gradients = loss_and_gradients(fast)
    np.testing.assert_allclose(fast(IDS), stock(IDS), atol=1e-5)
    np.testing.assert_allclose(fast_loss, stock_loss, rtol=1e-5)
    for variable, fast_gradient, stock_gradient in zip(stock.trainable_variables, fast_gradients, stock_gradients):
        np.testing.assert_allclose(
            tf.convert_to_tensor(fast_gradient), tf.convert_to_tensor(stock_gradient), atol=1e-5, err_msg=variable.path
        )


@pytest.mark.parametrize(
    "batch_size, cores, groups",
    [
        (64, 2, 2),  # the demo's batches on two cores: a loop per core
        (128, 8, 8),
        (64, 8, 4),  # eight groups would hold 8 rows each, too few to multiply at speed
        (30, 2, 1),
        (51, 2, 1),  # two groups would not be equal
        (48, 4, 3),
        (None, 2, 1),  # a batch size unknown while tracing
    ],
)
def test_row_groups_one_loop_per_core_each_large_enough(batch_size, cores, groups):
    assert fast_lstm.row_groups(batch_size, cores) == groups


@pytest.mark.parametrize("loops", [*LOOPS, "compiled ops"])
def test_bfloat16_products_stay_close_to_float32(monkeypatch, loops):
    if loops == "compiled ops" and not compiled_lstm.can_run(16, tf.bfloat16):
        pytest.skip("the compiled LSTM multiplies bfloat16 only on CPUs with AVX-512 BF16")
    use_loops(monkeypatch, loops)
    stock, _ = stock_and_fast()
    stock_loss, stock_gradients = loss_and_gradients(stock)
    with distribute.use_precision("bfloat16", tf.distribute.get_strategy()):
        bfloat16 = build_model(CONFIG.model, VOCABULARY.size, fast_cpu_lstm=True)
    bfloat16.set_weights(stock.get_weights())
    assert bfloat16.get_layer("lstm_1").compute_dtype == "bfloat16"
    loss, gradients = loss_and_gradients(bfloat16)
    assert abs(float(loss) - float(stock_loss)) < 0.01 * float(stock_loss)
    for gradient, stock_gradient in zip(gradients, stock_gradients):
        gradient, stock_gradient = tf.convert_to_tensor(gradient), tf.convert_to_tensor(stock_gradient)
        assert gradient.dtype == tf.float32
        assert float(tf.norm(gradient - stock_gradient)) < 0.05 * float(tf.norm(stock_gradient))


def test_an_export_trained_with_the_fast_layer_loads_into_keras_lstm_with_the_same_logits(tmp_path):
    model = build_model(CONFIG.model, VOCABULARY.size, fast_cpu_lstm=True)
    optimizer = optimization.make_optimizer(CONFIG, model, total_steps=5)
    batches = iter(tf.data.Dataset.from_tensors((IDS[:, :-1], IDS[:, 1:])).repeat())
    training.make_train_steps(model, optimizer, tf.distribute.get_strategy(), global_batch_size=3)(batches, 5)
    export.write_export(tmp_path / "export", model=model, config=CONFIG, vocabulary=VOCABULARY, steps_completed=5)

    loaded = export.load_model(export.load_export(tmp_path / "export"))
    assert [type(layer) for layer in loaded.layers[1:3]] == [keras.layers.LSTM] * 2
    np.testing.assert_allclose(loaded(IDS), model(IDS), atol=1e-5)
    # Generation reads the weights one character at a time (char_lstm.step): the same text from either model.
    settings = dict(seed_text="the ", length=30, temperature=0.8, seed=3)
    assert "".join(generate_text(loaded, VOCABULARY, **settings)) == "".join(generate_text(model, VOCABULARY, **settings))


def test_keras_lstm_weights_load_into_the_fast_layer(tmp_path):
    stock, _ = stock_and_fast()
    stock.save_weights(tmp_path / "stock.weights.h5")
    fast = build_model(CONFIG.model, VOCABULARY.size, fast_cpu_lstm=True)
    fast.load_weights(tmp_path / "stock.weights.h5")
    np.testing.assert_allclose(fast(IDS), stock(IDS), atol=1e-5)


class _FakeTPUStrategy(tf.distribute.TPUStrategy):
    def __init__(self):  # no TPU to connect to: only the type matters to trains_on_cpu
        pass


@pytest.mark.parametrize(
    "strategy, gpus, on_cpu",
    [
        (tf.distribute.get_strategy(), [], True),
        (tf.distribute.MirroredStrategy(["/cpu:0"]), [], True),
        (tf.distribute.get_strategy(), ["/device:GPU:0"], False),  # one GPU: the default strategy trains there
        (tf.distribute.MirroredStrategy(["/cpu:0"]), ["/device:GPU:0", "/device:GPU:1"], False),
        (_FakeTPUStrategy(), [], False),
    ],
)
def test_the_fast_layer_trains_on_cpus_only(monkeypatch, strategy, gpus, on_cpu):
    list_logical_devices = tf.config.list_logical_devices
    monkeypatch.setattr(
        tf.config, "list_logical_devices", lambda kind=None: gpus if kind == "GPU" else list_logical_devices(kind)
    )
    assert distribute.trains_on_cpu(strategy) is on_cpu
