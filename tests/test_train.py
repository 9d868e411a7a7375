"""train.py and generate.py end to end, through the command line, on real books."""

import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import export
from conftest import PROJECT_ROOT
from models import compiled_lstm
from models.char_lstm import reset_states


def run(script, *flags):
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / script), *flags], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=600
    )


@pytest.mark.smoke
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
    # TensorFlow's own error-level log lines ("E0000 ... util.cc:131] oneDNN supports ...") mean nothing to a user.
    assert not re.findall(r"^E\d{4} .*", trained.stderr, re.M), trained.stderr
    # Which LSTM loops run, said before the first step: the compiled ones wherever they can be built (AVX2, g++).
    compiled = r"compiled \(models/lstm_kernel.cc\), products in (float32|bfloat16)"
    assert re.search(f"^LSTM loops: {compiled if compiled_lstm.can_run(64, tf.float32) else 'TensorFlow'}", trained.stdout, re.M), trained.stdout
    bits_per_char = [float(x) for x in re.findall(r"loss [\d.]+  ([\d.]+) bits/char", trained.stdout)]
    assert len(bits_per_char) == 6
    assert bits_per_char[-1] < bits_per_char[0] - 0.8, trained.stdout
    # Below 4 bits/char the model knows more than how often each letter occurs (about 4.5 bits of English text).
    validation = float(re.search(r"step 150/150  validation ([\d.]+) bits/char", trained.stdout).group(1))
    assert validation < 4.0, trained.stdout

    assert "--- sample after step 150 ---" in trained.stdout
    assert logged_tags(tmp_path / "alice.logs") >= {
        "train/loss",
        "train/bits_per_char",
        "train/learning_rate",
        "train/chars_per_sec",
        "validation/loss",
        "validation/bits_per_char",
        "samples",
    }

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


def logged_tags(logdir) -> set[str]:
    """The TensorBoard tags written under `logdir`."""
    return {
        value.tag
        for event_file in logdir.glob("events.out.tfevents.*")
        for event in tf.compat.v1.train.summary_iterator(str(event_file))
        for value in event.summary.value
    }


def start_endless_training(gutenberg_mirror, tmp_path, export_dir):
    """train.py on a tiny model for 100,000 steps, a progress line each step: a run to interrupt."""
    return subprocess.Popen(
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


def test_ctrl_c_keeps_what_was_learned(gutenberg_mirror, tmp_path):
    export_dir = tmp_path / "interrupted"
    process = start_endless_training(gutenberg_mirror, tmp_path, export_dir)
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


# Bad settings, files, downloads and exports: tests/test_bad_input.py.


def logged_losses(stdout: str) -> dict[int, float]:
    """{step: mean loss} from the progress lines."""
    return {int(step.replace(",", "")): float(loss) for step, loss in re.findall(r"^step ([\d,]+)/[\d,]+  loss ([\d.]+)", stdout, re.M)}


@pytest.mark.parametrize("kill_after", ["step 5/", "step 25/", "done:"])  # "done:" is printed just before the export
def test_a_run_killed_with_sigkill_resumes_from_its_last_checkpoint(gutenberg_mirror, tmp_path, kill_after):
    flags = [
        "--books=11",
        f"--gutenberg_mirror={gutenberg_mirror}",
        f"--cache_dir={tmp_path / 'cache'}",
        f"--export_dir={tmp_path / 'export'}",
        "--seq_len=20",
        "--batch_size=16",
        "--embedding_dim=8",
        "--rnn_units=32",
        "--learning_rate=0.01",
        "--steps=60",
        "--checkpoint_every=10",
        "--log_every=5",
        "--sample_length=0",
    ]
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "train.py"), *flags], stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT
    )
    before_kill = ""
    for line in process.stdout:
        before_kill += line
        if line.startswith(kill_after):
            process.kill()
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL

    rerun = run("train.py", *flags)

    assert rerun.returncode == 0, rerun.stderr
    assert export.load_export(tmp_path / "export").steps_completed == 60
    losses_before, losses_after = logged_losses(before_kill), logged_losses(rerun.stdout)
    resumed = re.search(r"resuming from the checkpoint of step (\d+)", rerun.stdout)
    if kill_after == "step 5/":  # before the first checkpoint: nothing to resume, a fresh start
        assert resumed is None and min(losses_after) == 5
        return
    if kill_after == "done:":  # killed while exporting: all steps were trained and checkpointed, none again
        assert "training is already complete: the checkpoints in" in rerun.stdout and "at step 60 of 60" in rerun.stdout
        assert resumed is None and not losses_after
        assert "done: 60 steps, best validation" in rerun.stdout and "nan" not in rerun.stdout
        fewer_steps = run("train.py", *[flag for flag in flags if not flag.startswith("--steps=")], "--steps=30")
        assert fewer_steps.returncode == 2 and "at step 60, past the 30 steps asked for" in fewer_steps.stderr
        return
    resumed_from = int(resumed.group(1))
    assert resumed_from >= 20 and resumed_from % 10 == 0
    assert min(losses_after) == resumed_from + 5  # the steps already checkpointed are not trained again
    # The loss curve goes on from where it was, not from the untrained start.
    assert losses_after[resumed_from + 5] < losses_before[5] - 0.3
    assert losses_after[resumed_from + 5] == pytest.approx(losses_before[max(losses_before)], abs=0.3)


def test_a_second_run_on_the_same_directories_is_refused_while_the_first_trains(gutenberg_mirror, tmp_path):
    def flags(export_dir, *more):
        return [
            "--books=31469",
            f"--gutenberg_mirror={gutenberg_mirror}",
            f"--cache_dir={tmp_path / 'cache'}",
            f"--export_dir={tmp_path / export_dir}",
            f"--checkpoint_dir={tmp_path / 'ckpt'}",
            "--seq_len=20",
            "--batch_size=8",
            "--embedding_dim=8",
            "--rnn_units=16",
            "--sample_length=0",
            *more,
        ]

    first = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "train.py"), *flags("export", "--steps=100000", "--log_every=1")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
    )
    try:
        for line in first.stdout:
            if line.startswith("step 2/"):
                break
        same_export = run("train.py", *flags("export", "--steps=3"))
        same_checkpoints = run("train.py", *flags("other_export", "--steps=3"))
    finally:
        first.kill()  # kill -9: it has no chance to give its locks back
        first.wait()
    for result, flag in [(same_export, "--export_dir"), (same_checkpoints, "--checkpoint_dir")]:
        assert result.returncode == 2, result.stderr
        assert f"is in use by another charbook run (pid {first.pid} on " in result.stderr
        assert f"choose another {flag}" in result.stderr and "training" not in result.stdout

    after_the_kill = run("train.py", *flags("export", "--steps=3", "--noresume"))
    assert after_the_kill.returncode == 0, after_the_kill.stderr
    assert export.load_export(tmp_path / "export").steps_completed == 3


def test_a_reader_of_the_progress_that_stops_is_like_ctrl_c(gutenberg_mirror, tmp_path):
    export_dir = tmp_path / "piped"
    process = start_endless_training(gutenberg_mirror, tmp_path, export_dir)
    for line in process.stdout:  # train.py | head: read until step 3, then go
        if line.startswith("step 3/"):
            break
    process.stdout.close()
    stderr = process.stderr.read()
    process.wait(timeout=120)

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "Broken pipe" not in stderr
    assert 3 <= export.load_export(export_dir).steps_completed < 100000  # checkpointed and exported
