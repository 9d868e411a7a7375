"""train.py and generate.py end to end, through the command line, on real books."""

import re
import signal
import subprocess
import sys

import numpy as np
import pytest

import export
from conftest import PROJECT_ROOT
from models.char_lstm import reset_states


def run(script, *flags):
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / script), *flags], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=600
    )


def test_train_export_generate_round_trip(gutenberg_mirror, tmp_path):
    export_dir = tmp_path / "alice"
    trained = run(
        "train.py",
        "--corpus=gutenberg",
        "--books=11",
        f"--gutenberg_mirror={gutenberg_mirror.as_uri()}",
        f"--cache_dir={tmp_path / 'cache'}",
        f"--export_dir={export_dir}",
        "--seq_len=50",
        "--batch_size=32",
        "--embedding_dim=16",
        "--rnn_units=64",
        "--learning_rate=0.01",
        "--steps=150",
        "--log_every=25",
    )
    assert trained.returncode == 0, trained.stderr
    bits_per_char = [float(x) for x in re.findall(r"loss [\d.]+  ([\d.]+) bits/char", trained.stdout)]
    assert len(bits_per_char) == 6
    assert bits_per_char[-1] < bits_per_char[0] - 0.8, trained.stdout
    # Below 4 bits/char the model knows more than how often each letter occurs (about 4.5 bits of English text).
    validation = float(re.search(r"step 150/150  validation ([\d.]+) bits/char", trained.stdout).group(1))
    assert validation < 4.0, trained.stdout

    exported = export.load_export(export_dir)
    assert exported.steps_completed == 150
    assert exported.config.rnn_units == 64 and exported.config.books == (11,)

    # The batch-1 stateful model that generation uses predicts exactly what the training model does.
    prefix = exported.vocabulary.encode("Alice was beginning to get very tired").numpy()[np.newaxis]
    training_model = export.load_model(exported)
    generation_model = export.load_model(exported, batch_size=1, stateful=True)
    reset_states(generation_model)
    generation_model(prefix[:, :-5])
    np.testing.assert_allclose(
        generation_model(prefix[:, -5:]).numpy()[0, -1], training_model(prefix).numpy()[0, -1], atol=1e-4
    )

    def generate(seed):
        result = run("generate.py", f"--export_dir={export_dir}", "--seed_text=Alice ", "--length=80", f"--seed={seed}")
        assert result.returncode == 0, result.stderr
        return result.stdout

    first = generate(seed=1)
    assert first.startswith("Alice ") and len(first) == len("Alice ") + 80 + 1
    assert generate(seed=1) == first
    assert generate(seed=2) != first


def test_ctrl_c_keeps_what_was_learned(gutenberg_mirror, tmp_path):
    export_dir = tmp_path / "interrupted"
    process = subprocess.Popen(
        [
            sys.executable,
            str(PROJECT_ROOT / "train.py"),
            "--books=31469",
            f"--gutenberg_mirror={gutenberg_mirror}",
            f"--cache_dir={tmp_path / 'cache'}",
            f"--export_dir={export_dir}",
            "--seq_len=20",
            "--batch_size=8",
            "--embedding_dim=8",
            "--rnn_units=16",
            "--steps=100000",
            "--log_every=1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
    )
    for line in process.stdout:
        if line.startswith("step 3/"):
            process.send_signal(signal.SIGINT)
            break
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    steps = export.load_export(export_dir).steps_completed
    assert 3 <= steps < 100000
    assert f"interrupted: {steps:,} steps" in stdout


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--seq_len=0"], "--seq_len=0 must be between 1"),
        (["--books=84,moby"], "--books: 'moby' is not an ebook id or a range of them"),
        (["--corpus=library"], "--corpus='library' is not one of gutenberg, files"),
        (["--corpus=files", "--files=/nonexistent/*.txt"], "no files match --files pattern '/nonexistent/*.txt'"),
        (["--books=999999"], "Gutenberg book 999999 is not in the mirror directory"),
    ],
)
def test_bad_input_is_one_clear_message_and_exit_status_2(gutenberg_mirror, tmp_path, flags, message):
    result = run(
        "train.py", f"--gutenberg_mirror={gutenberg_mirror}", f"--cache_dir={tmp_path}", f"--export_dir={tmp_path / 'x'}", *flags
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()
