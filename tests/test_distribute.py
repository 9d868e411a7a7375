"""Strategies tested as far as a CPU allows: mirrored over two logical CPU devices, multi-worker over two processes."""

import json
import os
import socket
import subprocess
import sys

import pytest

import distribute
import export
from conftest import PROJECT_ROOT

# Trains the same tiny model for a few steps on one device and mirrored over two logical CPU devices.
MIRRORED_AGAINST_ONE_DEVICE = """
import cli
cli.import_tensorflow_quietly()
import json, numpy as np, keras, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import distribute, optimization, training
from config import Config
from models.char_lstm import build_model
from pipeline.windows import split_input_target

cfg = Config(embedding_dim=8, rnn_units=16, batch_size=8, seq_len=10, learning_rate=0.01, clipnorm=1.0)
windows = np.random.default_rng(0).integers(1, 20, size=(64, 11)).astype(np.int32)
batches = tf.data.Dataset.from_tensor_slices(windows).map(split_input_target).batch(8, drop_remainder=True).repeat()

def losses(strategy):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_model(cfg.model, 20)
        optimizer = optimization.make_optimizer(cfg, model, total_steps=12, num_replicas=strategy.num_replicas_in_sync)
    step = training.make_train_step(model, optimizer, strategy, global_batch_size=cfg.batch_size)
    iterator = iter(strategy.experimental_distribute_dataset(batches))
    return [float(step(iterator)) for _ in range(12)]

mirrored = distribute.make_strategy("mirrored")
print(json.dumps({"replicas": mirrored.num_replicas_in_sync, "one_device": losses(distribute.make_strategy("default")),
                  "mirrored": losses(mirrored)}))
"""


def test_mirrored_over_two_devices_matches_one_device():
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_AGAINST_ONE_DEVICE], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300
    )
    assert result.returncode == 0, result.stderr
    losses = json.loads(result.stdout.strip().splitlines()[-1])
    assert losses["replicas"] == 2
    assert losses["one_device"][-1] < losses["one_device"][0]  # it learns
    for one, mirrored in zip(losses["one_device"], losses["mirrored"]):
        assert mirrored == pytest.approx(one, rel=1e-3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_train_together_and_only_the_chief_exports(gutenberg_mirror, tmp_path):
    workers = [f"localhost:{free_port()}" for _ in range(2)]
    flags = [
        "--strategy=multiworker",
        "--books=11",
        f"--gutenberg_mirror={gutenberg_mirror}",
        f"--cache_dir={tmp_path / 'cache'}",
        f"--export_dir={tmp_path / 'export'}",
        "--seq_len=20",
        "--batch_size=16",
        "--embedding_dim=8",
        "--rnn_units=16",
        "--steps=12",
        "--log_every=4",
        "--sample_length=20",
    ]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(
            subprocess.Popen(
                [sys.executable, str(PROJECT_ROOT / "train.py"), *flags],
                env={**os.environ, "TF_CONFIG": json.dumps(tf_config)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=PROJECT_ROOT,
            )
        )
    outputs = [process.communicate(timeout=400) for process in processes]
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr
        assert "MultiWorkerMirroredStrategy over 2 replica(s)" in stdout
    assert "exported to" in outputs[0][0] and "exported to" not in outputs[1][0]
    assert export.load_export(tmp_path / "export").steps_completed == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "export", "export.checkpoints", "export.logs"]


def test_multiworker_without_tf_config_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(distribute.UserError, match=r"needs \$TF_CONFIG"):
        distribute.make_strategy("multiworker")


def test_one_device_is_the_chief_and_computes_in_float32_by_default():
    strategy = distribute.make_strategy("default")
    assert distribute.is_chief(strategy)
    assert distribute.describe(strategy) == "the CPU"
    assert distribute.set_precision(False, strategy) == "float32"


def test_tpu_without_a_tpu_is_a_clear_error():
    with pytest.raises(distribute.UserError, match="--strategy=tpu found no TPU to use .*pick a TPU runtime"):
        distribute.make_strategy("tpu")
