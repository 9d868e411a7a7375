import pytest

import api
from models import sampling
import export
from config import Config
from errors import UserError
from models.char_lstm import build_model
from pipeline.vocab import build_vocabulary

CHARACTERS = "The cat sat on the mat.\n"


def load_untrained_export(directory, **settings):
    config = Config(embedding_dim=4, rnn_units=8, temperature=1.0, **settings)
    vocabulary = build_vocabulary([CHARACTERS.lower() if config.lowercase else CHARACTERS])
    model = build_model(config.model, vocabulary.size)
    export.write_export(directory, model=model, config=config, vocabulary=vocabulary, steps_completed=0)
    return api.load(directory)


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    return load_untrained_export(tmp_path_factory.mktemp("api") / "export")


@pytest.fixture(scope="module")
def lowercase_generator(tmp_path_factory):
    """A model trained with --lowercase: its vocabulary has no capital letters."""
    return load_untrained_export(tmp_path_factory.mktemp("api") / "export", lowercase=True)


def test_generate_returns_the_seed_and_the_sample(generator):
    text = generator.generate("The ", length=25, seed=1)
    assert text.startswith("The ") and len(text) == 29
    assert set(text) <= set(CHARACTERS)
    assert generator.generate("The ", length=25, seed=1) == text


def test_stream_yields_the_same_text_in_pieces(generator):
    pieces = list(generator.stream("The ", length=120, seed=2))
    assert [len(piece) for piece in pieces] == [32, 64, 24]  # the first chunk is short, the next ones double
    assert "The " + "".join(pieces) == generator.generate("The ", length=120, seed=2)


def test_generate_many_gives_each_sample_the_seed(generator):
    texts = generator.generate_many("a", num_samples=4, length=10, seed=3)
    assert len(texts) == 4 and all(t.startswith("a") and len(t) == 11 for t in texts)


def test_bad_seed_text_raises_before_any_text(generator):
    with pytest.raises(UserError, match="never saw in training: 'Q'"):
        generator.stream("Q", length=5)


def test_generation_compiles_once_for_the_same_settings(generator):
    generator.generate("The ", length=40, temperature=0.5, seed=1)
    generator.generate("The cat ", length=70, temperature=0.5, seed=2)  # a second seed length: the seed reader relaxes its shapes
    chunk_loop = sampling._compiled_chunk(sampling.make_next_id_fn(temperature=0.5))
    traces = chunk_loop.experimental_get_tracing_count(), sampling._compiled_prime.experimental_get_tracing_count()

    generator.generate("The mat", length=100, temperature=0.5, seed=3)
    generator.generate_many("a", num_samples=1, length=10, temperature=0.5, seed=4)

    assert traces[0] == 1
    assert (chunk_loop.experimental_get_tracing_count(), sampling._compiled_prime.experimental_get_tracing_count()) == traces


def test_top_k_above_the_vocabulary_is_all_of_it(generator):
    assert generator.generate("The ", length=60, seed=5, top_k=500) == generator.generate("The ", length=60, seed=5, top_k=0)
    settings, notes = generator.fit_settings(top_k=500)
    assert settings["top_k"] == 13
    assert notes == ["--top_k=500 is more than the 13 characters the model knows; sampling among all of them"]
    assert generator.fit_settings(top_k=13) == (generator.fit_settings()[0] | {"top_k": 13}, [])


def test_stop_at_is_read_in_lower_case_by_a_lowercase_model(lowercase_generator):
    text = lowercase_generator.generate("The ", length=300, seed=6, stop_at="T")
    assert text == lowercase_generator.generate("The ", length=300, seed=6, stop_at="t")
    assert text.endswith("t") and text.count("t") == 1  # the seed text as given, then up to the first t written
    settings, notes = lowercase_generator.fit_settings(stop_at="THE MAT")
    assert settings["stop_at"] == "the mat"
    assert notes == ["the model writes lower-case text (it was trained with --lowercase), so --stop_at='THE MAT' is read as 'the mat'"]


def test_stop_at_the_model_can_never_write_is_refused(generator, lowercase_generator):
    with pytest.raises(UserError, match=r"--stop_at='THE END!' has characters the model never writes: 'H', 'E', 'N', 'D', '!', so no"):
        generator.stream("The ", stop_at="THE END!")
    with pytest.raises(UserError, match=r"--stop_at='\\r\\n' has characters the model never writes: '\\r'.*vocab.json"):
        lowercase_generator.generate_many("The ", num_samples=2, stop_at="\r\n")
