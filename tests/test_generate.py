"""generate.py from the command line, on an export written with untrained weights (no training needed)."""

import subprocess
import sys

import pytest

import api
import export
from config import Config
from conftest import PROJECT_ROOT
from models.char_lstm import build_model
from pipeline.vocab import build_vocabulary


def write_untrained_export(directory, **settings):
    config = Config(embedding_dim=4, rnn_units=8, **settings)
    vocabulary = build_vocabulary(["the cat sat on the mat.\n" if config.lowercase else "The cat sat on the mat.\n"])
    model = build_model(config.model, vocabulary.size)
    export.write_export(directory, model=model, config=config, vocabulary=vocabulary, steps_completed=0)
    return directory


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return write_untrained_export(tmp_path_factory.mktemp("generate") / "export")


def run_generate(*flags):
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "generate.py"), *flags], capture_output=True, text=True, timeout=300
    )


@pytest.mark.smoke  # also: nothing on stderr, where TensorFlow 2.19's XLA announces itself (cli.import_tensorflow_quietly)
def test_generates_the_requested_number_of_known_characters(export_dir):
    result = run_generate(f"--export_dir={export_dir}", "--seed_text=The ", "--length=50", "--seed=3")
    assert result.returncode == 0, result.stderr
    text = result.stdout.removesuffix("\n")
    assert text.startswith("The ") and len(text) == 54
    assert set(text) <= set("The cat sat on the mat.\n")
    assert result.stderr == ""


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--length=-1"], "--length=-1 must be between"),
        (["--temperature=banana"], "--temperature=banana: could not convert"),
    ],
)
def test_bad_input_is_one_clear_message_and_exit_status_2(export_dir, flags, message):
    # Damaged exports, unknown seed characters and the rest: tests/test_bad_input.py.
    result = run_generate(f"--export_dir={export_dir}", *flags)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_several_samples_each_after_a_header(export_dir):
    result = run_generate(f"--export_dir={export_dir}", "--seed_text=The ", "--length=30", "--num_samples=3", "--seed=3")
    assert result.returncode == 0, result.stderr
    headers = [line for line in result.stdout.splitlines() if line.startswith("--- sample")]
    assert headers == ["--- sample 1 of 3 ---", "--- sample 2 of 3 ---", "--- sample 3 of 3 ---"]


@pytest.mark.smoke
def test_command_line_and_python_api_give_the_same_text(export_dir):
    result = run_generate(f"--export_dir={export_dir}", "--seed_text=The ", "--length=40", "--temperature=1.0", "--seed=9")
    assert result.returncode == 0, result.stderr
    assert result.stdout == api.load(export_dir).generate("The ", length=40, temperature=1.0, seed=9) + "\n"


def test_top_k_above_the_vocabulary_samples_among_all_characters_with_a_note(export_dir):
    result = run_generate(f"--export_dir={export_dir}", "--seed_text=The ", "--length=40", "--top_k=500", "--seed=9")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "note: --top_k=500 is more than the 13 characters the model knows; sampling among all of them\n"
    assert result.stdout == api.load(export_dir).generate("The ", length=40, seed=9, top_k=0) + "\n"


def test_stop_at_is_read_in_lower_case_when_the_model_was_trained_so(tmp_path):
    export_dir = write_untrained_export(tmp_path / "export", lowercase=True)
    result = run_generate(f"--export_dir={export_dir}", "--seed_text=The ", "--length=300", "--stop_at=T", "--seed=9")
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "note: the model writes lower-case text (it was trained with --lowercase), so --stop_at='T' is read as 't'\n"
    )
    assert result.stdout == api.load(export_dir).generate("The ", length=300, seed=9, stop_at="t") + "\n"
    assert result.stdout.endswith("t\n")


def test_output_into_a_reader_that_stops_ends_quietly(export_dir):
    """generate.py ... | head -c 10: no 'error: Broken pipe', exit status 0, as other Unix tools end."""
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "generate.py"), f"--export_dir={export_dir}", "--seed_text=The ", "--length=100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout.read(10).startswith(b"The ")
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=300) == 0
    assert stderr == b""
