"""The exported SavedModel, loaded by a Python that cannot import a single charbook module."""

import json
import subprocess
import sys

import pytest

import export
from config import Config
from models.char_lstm import build_model
from models.sampling import generate_text
from models.serving import save_generation_model
from pipeline.vocab import build_vocabulary

CHARACTERS = "the quick brown fox jumps over a lazy dog.\n"
VOCABULARY = build_vocabulary([CHARACTERS])

# Runs in a fresh interpreter: -I leaves the project and PYTHONPATH off sys.path, and cwd is elsewhere.
CALL_THE_SIGNATURE = """
import json, sys
import tensorflow as tf
generate = tf.saved_model.load(sys.argv[1]).signatures["generate"]
texts = []
for call in json.loads(sys.argv[2]):
    try:
        text = generate(seed_text=tf.constant(call["seed_text"]), length=tf.constant(call["length"]),
                        temperature=tf.constant(call["temperature"]), seed=tf.constant(call["seed"]))["generated_text"]
        texts.append(text.numpy().decode("utf-8"))
    except tf.errors.InvalidArgumentError as error:
        texts.append("error: " + error.message)
print(json.dumps(texts))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    directory = tmp_path_factory.mktemp("serving") / "export"
    config = Config(embedding_dim=4, rnn_units=8)
    model = build_model(config.model, VOCABULARY.size)
    export.write_export(directory, model=model, config=config, vocabulary=VOCABULARY, steps_completed=0)
    return directory, model


def call_without_charbook(saved_model, calls, tmp_path):
    result = subprocess.run(
        [sys.executable, "-I", "-c", CALL_THE_SIGNATURE, str(saved_model), json.dumps(calls)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.smoke
def test_saved_model_generates_like_charbook_without_charbook(exported, tmp_path):
    directory, model = exported
    calls = [
        {"seed_text": "the ", "length": 40, "temperature": 0.0, "seed": 0},
        {"seed_text": "the ", "length": 40, "temperature": 1.0, "seed": 7},
        {"seed_text": "the ", "length": 40, "temperature": 1.0, "seed": 7},
        {"seed_text": "the ", "length": 40, "temperature": 1.0, "seed": 8},
        {"seed_text": "THE Ω ", "length": 25, "temperature": 1.0, "seed": 1},  # unknown characters read as unknown
        {"seed_text": "a", "length": 0, "temperature": 1.0, "seed": 1},
        {"seed_text": "", "length": 10, "temperature": 1.0, "seed": 1},
    ]
    greedy, sampled, same_seed, other_seed, unknown_seed, empty, no_seed_text = call_without_charbook(
        directory / export.SAVED_MODEL_DIR, calls, tmp_path
    )

    ours = "".join(generate_text(model, VOCABULARY, seed_text="the ", length=40, temperature=0, seed=0))
    assert greedy == ours
    assert sampled == same_seed != other_seed
    for text, call in zip([greedy, sampled, other_seed, unknown_seed, empty], [*calls[:2], *calls[3:6]]):
        assert len(text) == call["length"] and set(text) <= set(CHARACTERS)
    assert no_seed_text.startswith("error: ") and "seed_text is empty; give at least one character" in no_seed_text


def test_saved_model_samples_the_same_text_as_charbook(exported, tmp_path):
    directory, model = exported
    [served] = call_without_charbook(
        directory / export.SAVED_MODEL_DIR, [{"seed_text": "a lazy ", "length": 50, "temperature": 0.8, "seed": 3}], tmp_path
    )
    ours = "".join(generate_text(model, VOCABULARY, seed_text="a lazy ", length=50, temperature=0.8, seed=3))
    assert served == ours


def test_a_saved_model_that_cannot_be_written_is_an_os_error(tmp_path):
    """cli.run turns OSErrors into one line on stderr; TensorFlow's own file errors would be a traceback."""
    (tmp_path / "file").write_text("not a directory")
    model = build_model(Config(embedding_dim=4, rnn_units=8).model, VOCABULARY.size)
    with pytest.raises(OSError, match="cannot write the SavedModel to .*file/saved_model"):
        save_generation_model(tmp_path / "file" / "saved_model", model, VOCABULARY)
