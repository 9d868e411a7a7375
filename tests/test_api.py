import pytest

import api
from models import sampling
import export
from config import Config
from errors import UserError
from models.char_lstm import build_model
from pipeline.vocab import build_vocabulary

CHARACTERS = "The cat sat on the mat.\n"


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    directory = tmp_path_factory.mktemp("api") / "export"
    config = Config(embedding_dim=4, rnn_units=8, temperature=1.0)
    vocabulary = build_vocabulary([CHARACTERS])
    model = build_model(config, vocabulary.size)
    export.write_export(directory, model=model, config=config, vocabulary=vocabulary, steps_completed=0)
    return api.load(directory)


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
