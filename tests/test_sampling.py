import numpy as np
import pytest
import tensorflow as tf

from config import Config
from errors import UserError
from models.char_lstm import build_model
from models.sampling import (
    stop_samples_at,
    generate_samples,
    generate_text,
    greedy,
    keep_top_p,
    make_next_id_fn,
    sample,
    uniform_noise,
)
from pipeline.vocab import OOV_ID, build_vocabulary

VOCABULARY = build_vocabulary(["helo wrd"])  # ids: ' '=1 d=2 e=3 h=4 l=5 o=6 r=7 w=8


def test_greedy_picks_the_most_likely_character():
    logits = tf.constant([[0.0, 1.0, 5.0, 2.0], [9.0, 1.0, 0.0, 0.0]])
    assert greedy(logits, tf.constant([0, 0])).numpy().tolist() == [2, 0]


def test_sampling_repeats_with_the_same_seed_and_follows_the_probabilities():
    logits = tf.math.log(tf.constant([[0.7, 0.2, 0.1]] * 2000))
    first = sample(logits, tf.constant([1, 0])).numpy()
    assert first.tolist() == sample(logits, tf.constant([1, 0])).numpy().tolist()
    assert first.tolist() != sample(logits, tf.constant([2, 0])).numpy().tolist()
    np.testing.assert_allclose(np.bincount(first, minlength=3) / 2000, [0.7, 0.2, 0.1], atol=0.04)


def test_noise_is_the_same_with_and_without_xla():
    """So that the compiled loop and the exported SavedModel (no XLA) sample the same text."""
    seed = tf.constant([11, 4])
    noise = uniform_noise(tf.constant([3, 50]), seed).numpy()
    compiled = tf.function(uniform_noise, jit_compile=True)(tf.constant([3, 50]), seed).numpy()
    np.testing.assert_array_equal(noise, compiled)
    assert 0 < noise.min() and noise.max() < 1 and abs(noise.mean() - 0.5) < 0.1


def test_low_temperature_sharpens_the_distribution():
    logits = tf.math.log(tf.constant([[0.6, 0.4]] * 2000))
    cold = make_next_id_fn(temperature=0.1)(logits, tf.constant([3, 0])).numpy()
    assert (cold == 0).mean() > 0.95


def test_temperature_zero_is_argmax():
    logits = tf.random.stateless_normal([50, 30], seed=[4, 0])
    next_id = make_next_id_fn(temperature=0, top_k=3, top_p=0.5)
    assert next_id(logits, tf.constant([5, 0])).numpy().tolist() == tf.argmax(logits, axis=-1).numpy().tolist()


def test_top_k_never_leaves_the_k_most_likely():
    logits = tf.random.stateless_normal([500, 30], seed=[6, 0])
    top_3 = tf.math.top_k(logits, k=3).indices.numpy()
    ids = make_next_id_fn(temperature=2.0, top_k=3)(logits, tf.constant([7, 0])).numpy()
    assert all(i in row for i, row in zip(ids, top_3))
    assert len(set(ids)) > 3  # rows differ, so the sampler is not stuck on a few ids


def test_top_k_above_the_vocabulary_keeps_every_id():
    """The top 500 of 30 ids are all 30: the same ids as no top-k at all, in the compiled loop too."""
    logits = tf.random.stateless_normal([50, 30], seed=[9, 0])
    ids = make_next_id_fn(temperature=1.0, top_k=500)(logits, tf.constant([10, 0])).numpy()
    assert ids.tolist() == make_next_id_fn(temperature=1.0)(logits, tf.constant([10, 0])).numpy().tolist()

    model = build_model(Config(embedding_dim=4, rnn_units=8).model, VOCABULARY.size)

    def text(top_k):
        return "".join(generate_text(model, VOCABULARY, seed_text="he", length=40, temperature=1.0, seed=4, top_k=top_k))

    assert text(top_k=500) == text(top_k=0)


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = tf.math.log(tf.constant([[0.5, 0.3, 0.15, 0.05]]))
    assert keep_top_p(logits, 0.7).numpy()[0].tolist()[2:] == [-np.inf, -np.inf]  # 0.5 + 0.3 reaches 0.7
    assert keep_top_p(logits, 0.85).numpy()[0].tolist()[3] == -np.inf  # 0.5 + 0.3 + 0.15 reaches 0.85
    assert np.isfinite(keep_top_p(logits, 0.01).numpy()[0, 0])  # the most likely id always stays
    ids = make_next_id_fn(temperature=1.0, top_p=0.7)(tf.tile(logits, [1000, 1]), tf.constant([8, 0])).numpy()
    assert set(ids) == {0, 1}


def test_generation_equals_rerunning_the_whole_prefix_every_step():
    """The compiled loop with carried state is exactly the slow, obvious definition of greedy decoding."""
    config = Config(embedding_dim=4, rnn_units=8)
    training_model = build_model(config.model, VOCABULARY.size)

    text = "he"
    for _ in range(30):
        logits = training_model(VOCABULARY.encode(text)[tf.newaxis]).numpy()[0, -1]
        logits[OOV_ID] = -np.inf
        text += VOCABULARY.decode([np.argmax(logits)])

    generated = generate_text(training_model, VOCABULARY, seed_text="he", length=30, temperature=0, seed=0)
    assert "he" + "".join(generated) == text


def test_same_seed_gives_the_same_text_from_a_real_model():
    model = build_model(Config(embedding_dim=4, rnn_units=8).model, VOCABULARY.size)

    def text(seed):
        return "".join(generate_text(model, VOCABULARY, seed_text="hello", length=40, temperature=1.0, seed=seed))

    assert text(1) == text(1)
    assert text(1) != text(2)
    assert "[UNK]" not in text(3)  # the out-of-vocabulary id is never generated


def test_models_of_several_sizes_generate_in_one_process():
    """A notebook may load several exports: the compiled functions trace again for each model size."""
    for units, seed_text in ((8, "he"), (12, "hello"), (16, "h"), (8, "hello w")):
        model = build_model(Config(embedding_dim=4, rnn_units=units).model, VOCABULARY.size)
        assert len("".join(generate_text(model, VOCABULARY, seed_text=seed_text, length=40, temperature=1.0, seed=1))) == 40


def test_seed_text_with_unknown_characters_names_them():
    model = build_model(Config(embedding_dim=4, rnn_units=8).model, VOCABULARY.size)
    with pytest.raises(UserError, match="never saw in training: 'x', 'Z'"):
        generate_text(model, VOCABULARY, seed_text="hex Zed", length=5, temperature=1.0, seed=0)


def test_each_sample_ends_just_after_its_first_stop_string():
    chunks = iter([["ab", "xy"], ["c.", "z"], [" d", ". w"], ["never", "read"]])
    assert list(stop_samples_at(chunks, stop_at=". ")) == [["ab", "xy"], ["c.", "z"], [" ", ". "]]


def test_samples_generated_together_differ_and_repeat_with_the_seed():
    model = build_model(Config(embedding_dim=4, rnn_units=8).model, VOCABULARY.size)

    def samples(seed):
        texts = ["", "", ""]
        for chunk in generate_samples(
            model, VOCABULARY, seed_text="he", length=40, temperature=1.0, seed=seed, num_samples=3
        ):
            texts = [text + new for text, new in zip(texts, chunk)]
        return texts

    first = samples(seed=5)
    assert [len(text) for text in first] == [40, 40, 40]
    assert len(set(first)) == 3
    assert samples(seed=5) == first


def test_unknown_seed_characters_can_be_read_as_unknown():
    model = build_model(Config(embedding_dim=4, rnn_units=8).model, VOCABULARY.size)
    text = "".join(generate_text(model, VOCABULARY, seed_text="hex", length=10, temperature=1.0, seed=0, allow_unknown=True))
    assert len(text) == 10 and "x" not in text
