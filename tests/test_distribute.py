"""Strategies tested as far as a CPU allows: mirrored over two logical CPU devices, multi-worker over two processes,
TPUs found in fake device trees of TPU VMs (and TensorFlow, without TPU support here, unable to use them)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys

import keras
import pytest
import tensorflow as tf

import distribute
import export
from conftest import PROJECT_ROOT
from step_plan import TIMED_STEPS

# Trains the same tiny model for a few steps on one device and mirrored over two logical CPU devices.
MIRRORED_AGAINST_ONE_DEVICE = """
import cli
cli.import_tensorflow_quietly()
import json, numpy as np, keras, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import distribute, evaluation, optimization, training
from config import Config
from models.char_lstm import build_model
from pipeline.windows import split_input_target

cfg = Config(embedding_dim=8, rnn_units=16, batch_size=8, seq_len=10, learning_rate=0.01, clipnorm=1.0)
windows = np.random.default_rng(0).integers(1, 20, size=(64, 11)).astype(np.int32)
batches = tf.data.Dataset.from_tensor_slices(windows).map(split_input_target).batch(8, drop_remainder=True).repeat()
# The same batches as streams of 4 windows (the state carried after each stream's first): each replica carries its own rows'.
streams = batches.enumerate().map(lambda step, batch: (*batch, tf.fill([8], tf.cast(step % 4 > 0, tf.float32))))

def losses(strategy, steps_per_call, data=batches):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_model(cfg.model, 20)
        optimizer = optimization.make_optimizer(cfg, model, total_steps=12, num_replicas=strategy.num_replicas_in_sync)
    train_steps = training.make_train_steps(model, optimizer, strategy, global_batch_size=cfg.batch_size, streams=data is streams)
    iterator = iter(strategy.experimental_distribute_dataset(data))
    return [float(loss) for _ in range(12 // steps_per_call) for loss in train_steps(iterator, steps_per_call)]

def streams_scored(strategy):  # validation in streams: bits/char of 8 batches of the streams, each replica its own rows'
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_model(cfg.model, 20)
    scoring = streams.take(8).map(lambda inputs, targets, carried: (inputs, targets, tf.ones([8]), carried))
    return evaluation.make_evaluate(model, strategy, stream_rows=8)(scoring)[0]

mirrored = distribute.make_strategy("mirrored")
one_device = distribute.make_strategy("default")
print(json.dumps({"replicas": mirrored.num_replicas_in_sync, "one_device": losses(one_device, 1),
                  "mirrored": losses(mirrored, 1), "mirrored_4_per_call": losses(mirrored, 4),
                  "streams_one_device": losses(one_device, 1, streams), "streams_mirrored": losses(mirrored, 4, streams),
                  "streams_scored": [streams_scored(one_device), streams_scored(mirrored)]}))
"""


@pytest.mark.smoke
def test_mirrored_over_two_devices_matches_one_device_one_or_several_steps_per_call_in_windows_or_streams():
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_AGAINST_ONE_DEVICE], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300
    )
    assert result.returncode == 0, result.stderr
    losses = json.loads(result.stdout.strip().splitlines()[-1])
    assert losses["replicas"] == 2
    assert losses["one_device"][-1] < losses["one_device"][0]  # it learns
    for one, mirrored, four_per_call in zip(losses["one_device"], losses["mirrored"], losses["mirrored_4_per_call"], strict=True):
        assert mirrored == pytest.approx(one, rel=1e-3)
        assert four_per_call == pytest.approx(mirrored, rel=1e-6)
    assert losses["streams_one_device"][0] == pytest.approx(losses["one_device"][0], rel=1e-6)  # a stream's first window
    carrying = [abs(stream - window) for stream, window in zip(losses["streams_one_device"], losses["one_device"])]
    assert max(carrying) > 0.01  # windows read on from the state the last ones left
    assert losses["streams_mirrored"] == pytest.approx(losses["streams_one_device"], rel=1e-5)  # each replica its own rows'
    assert losses["streams_scored"][1] == pytest.approx(losses["streams_scored"][0], rel=1e-5)


# Float16 over two logical CPU devices: a normal step, a step whose gradients overflow on replica 1 only, two normal
# steps. Prints, for each step, what it did to each replica's weights and the loss scale.
OVERFLOW_ON_ONE_REPLICA = """
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
strategy = distribute.make_strategy("mirrored")
keras.mixed_precision.set_global_policy(distribute.precision_policy("float16", strategy))  # this script's models only
keras.utils.set_random_seed(0)
with strategy.scope():
    model = build_model(cfg.model, 20)
    optimizer = optimization.make_optimizer(cfg, model, total_steps=4, num_replicas=2)
# A real overflow that only id 19 causes: its embedding is 60000 along a dimension that no other id uses and the
# first LSTM's kernel ignores (that row is zero), so the forward pass is unchanged, while the gradient of that
# kernel row, 60000 times the gates' gradient, exceeds float16's 65504 at any usable loss scale.
embeddings = model.get_layer("embedding").embeddings.numpy()
embeddings[:, 1] = 0.0
embeddings[19, 1] = 60000.0
model.get_layer("embedding").embeddings.assign(embeddings)
kernel = model.get_layer("lstm_1").cell.kernel.numpy()
kernel[1] = 0.0
model.get_layer("lstm_1").cell.kernel.assign(kernel)

rng = np.random.default_rng(0)
normal = lambda: rng.integers(1, 19, size=(8, 11))  # ids 1-18
overflowing = normal()
overflowing[4:, 5] = 19  # rows 4-7 of the global batch of 8 are replica 1's
windows = np.concatenate([normal(), overflowing, normal(), normal()]).astype(np.int32)
batches = tf.data.Dataset.from_tensor_slices(windows).map(split_input_target).batch(8, drop_remainder=True)
iterator = iter(strategy.experimental_distribute_dataset(batches))
train_steps = training.make_train_steps(model, optimizer, strategy, global_batch_size=8)

def each_replica(variable):
    return [value.numpy() for value in strategy.experimental_local_results(variable.value)]

def weights_of_each_replica():
    return [np.concatenate([w.ravel() for w in ws]) for ws in zip(*map(each_replica, model.trainable_variables))]

for _ in range(4):
    before = weights_of_each_replica()
    train_steps(iterator, 1)
    after = weights_of_each_replica()
    print(json.dumps({
        "changed": [not np.array_equal(b, a) for b, a in zip(before, after)],
        "finite": [bool(np.isfinite(a).all()) for a in after],
        "replicas_agree": bool(np.array_equal(after[0], after[1])),
        "loss_scale": [float(s) for s in each_replica(optimizer.dynamic_scale)],
    }))
"""


def test_an_overflow_on_one_replica_skips_the_step_on_both_and_halves_the_loss_scale():
    result = subprocess.run(
        [sys.executable, "-c", OVERFLOW_ON_ONE_REPLICA], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300
    )
    assert result.returncode == 0, result.stderr
    normal, overflow, *after = [json.loads(line) for line in result.stdout.strip().splitlines()[-4:]]
    trained = {"changed": [True, True], "finite": [True, True], "replicas_agree": True}
    assert normal == {**trained, "loss_scale": [2.0**15] * 2}
    # Keras alone (keras-team/keras#18666) changed both replicas' weights to NaN and kept the loss scale at 2**15.
    skipped = {"changed": [False, False], "finite": [True, True], "replicas_agree": True}
    assert overflow == {**skipped, "loss_scale": [2.0**14] * 2}
    assert after == [{**trained, "loss_scale": [2.0**14] * 2}] * 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_workers(flags: list[str], *, own_flags) -> list[subprocess.Popen]:
    """train.py in two processes on this machine, as two workers of one MultiWorkerMirroredStrategy run.

    own_flags(index) -> the flags that differ per worker (each its own --cache_dir, as on two machines).
    """
    workers = [f"localhost:{free_port()}" for _ in range(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(
            subprocess.Popen(
                [sys.executable, str(PROJECT_ROOT / "train.py"), "--strategy=multiworker", *flags, *own_flags(index)],
                env={**os.environ, "TF_CONFIG": json.dumps(tf_config)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=PROJECT_ROOT,
            )
        )
    return processes


def run_workers(flags: list[str], *, own_flags) -> list[tuple[int, str, str]]:
    processes = start_workers(flags, own_flags=own_flags)
    outputs = [process.communicate(timeout=400) for process in processes]
    return [(process.returncode, *output) for process, output in zip(processes, outputs)]


@pytest.mark.smoke
def test_two_workers_train_resume_together_or_refuse_when_their_checkpoints_differ(gutenberg_mirror, tmp_path):
    flags = [
        "--books=31469",
        f"--gutenberg_mirror={gutenberg_mirror}",
        f"--export_dir={tmp_path / 'export'}",
        "--seq_len=32",
        "--batch_size=8",  # validation's last batch is not full: its filler windows keep every replica's share equal
        "--stream_windows=4",  # each worker's replica carries the state of its own rows, in training and validation
        "--embedding_dim=8",
        "--rnn_units=16",
        "--log_every=4",
        "--sample_length=20",
    ]

    def on_two_machines(index):  # nothing shared: each worker its own cache and checkpoint directory
        return [f"--cache_dir={tmp_path / f'cache{index}'}", f"--checkpoint_dir={tmp_path / f'checkpoints{index}'}"]

    first = run_workers([*flags, "--steps=12"], own_flags=on_two_machines)
    for returncode, stdout, stderr in first:
        assert returncode == 0, stderr
        assert "MultiWorkerMirroredStrategy over 2 replica(s)" in stdout and "validation" in stdout
    assert "exported to" in first[0][1] and "exported to" not in first[1][1]
    assert export.load_export(tmp_path / "export").steps_completed == 12
    assert not (tmp_path / "checkpoints1").exists()  # only the chief writes checkpoints

    # Resumed, the chief would start at step 12 and the other worker afresh: both refuse, none hangs.
    refused = run_workers([*flags, "--steps=20"], own_flags=on_two_machines)
    for returncode, stdout, stderr in refused:
        assert returncode == 2, stderr
        assert "the 2 workers would resume from different checkpoints (worker 0: step 12, worker 1: a fresh start)" in stderr
        assert "Traceback" not in stderr

    def sharing_checkpoints(index):  # the chief's checkpoint directory seen by both, as on a shared filesystem
        return [f"--cache_dir={tmp_path / f'cache{index}'}", f"--checkpoint_dir={tmp_path / 'checkpoints0'}"]

    # Resumed for a time rather than a number of steps: the workers plan at the same step and follow the chief's plan.
    resumed = run_workers([*flags, "--train_minutes=0.1"], own_flags=sharing_checkpoints)
    plans = []
    for returncode, stdout, stderr in resumed:
        assert returncode == 0, stderr
        assert "resuming from the checkpoint of step 12" in stdout
        # "N steps planned, at the speed this worker measured", or the time gone by the step the plan was due
        planned = re.search(r"^--train_minutes=0.1: (?:([\d,]+) steps planned|.* spent by step ([\d,]+))", stdout, re.M)
        plans.append(int((planned.group(1) or planned.group(2)).replace(",", "")))
    assert plans[0] == plans[1]
    assert export.load_export(tmp_path / "export").steps_completed == plans[0] >= 12 + 1 + TIMED_STEPS


def test_ctrl_c_on_one_worker_ends_every_worker_with_a_clear_message(gutenberg_mirror, tmp_path):
    flags = [
        "--books=31469",
        f"--gutenberg_mirror={gutenberg_mirror}",
        f"--export_dir={tmp_path / 'export'}",
        "--seq_len=32",
        "--batch_size=8",
        "--embedding_dim=8",
        "--rnn_units=16",
        "--log_every=5",
        "--steps=100000",
        "--sample_length=0",
    ]
    chief, other = start_workers(flags, own_flags=lambda index: [f"--cache_dir={tmp_path / f'cache{index}'}"])
    first_lines = []
    while not any(line.startswith("step ") for line in first_lines[-1:]) and chief.poll() is None:
        first_lines.append(chief.stdout.readline())  # the workers are training together
    other.send_signal(signal.SIGINT)
    other_stdout, other_stderr = other.communicate(timeout=120)
    chief_stdout, chief_stderr = chief.communicate(timeout=120)  # found the other gone by its missing heartbeats
    assert other.returncode == 130, other_stderr
    assert "every worker of this run stops; rerun every worker to start again" in other_stdout
    assert chief.returncode == 2, chief_stderr
    assert "error: another worker of this multi-worker run stopped or cannot be reached (/job:worker/replica:0/task:1)" in chief_stderr
    assert "Traceback" not in chief_stderr + other_stderr
    assert not (tmp_path / "export").exists()


def test_multiworker_without_tf_config_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(distribute.UserError, match=r"needs \$TF_CONFIG"):
        distribute.make_strategy("multiworker")


def test_one_device_is_the_chief():
    strategy = distribute.make_strategy("default")
    assert distribute.is_chief(strategy)
    assert distribute.describe(strategy) == "the CPU"


def test_precision_auto_is_bfloat16_on_cpus_that_have_it_and_float32_on_others():
    strategy = distribute.make_strategy("default")
    assert distribute.precision_policy("auto", strategy, cpu_bfloat16=True) == "mixed_bfloat16"
    assert distribute.precision_policy("auto", strategy, cpu_bfloat16=False) == "float32"
    assert distribute.precision_policy("float32", strategy, cpu_bfloat16=True) == "float32"
    assert distribute.precision_policy("bfloat16", strategy, cpu_bfloat16=False) == "mixed_bfloat16"


def test_precision_auto_is_float16_with_a_gpu(monkeypatch):
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: ["/device:GPU:0"] if kind == "GPU" else [])
    assert distribute.precision_policy("auto", tf.distribute.get_strategy(), cpu_bfloat16=True) == "mixed_float16"


def test_use_precision_gives_back_the_policy_from_before_even_after_an_error():
    strategy = distribute.make_strategy("default")
    with pytest.raises(RuntimeError), distribute.use_precision("bfloat16", strategy) as policy:
        assert policy == "mixed_bfloat16" and keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        raise RuntimeError("a failed build")
    assert keras.mixed_precision.global_policy().name == "float32"


# A --batch_size that two replicas cannot share evenly, then one they can: refused before any book is read
# (the mirror does not exist, so reading would fail with another message).
BATCH_SIZES_OVER_TWO_REPLICAS = """
import cli
cli.import_tensorflow_quietly()
import json, sys, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import training
from config import Config
from errors import UserError

messages = {}
for batch_size in (7, 1, 8):
    cfg = Config(strategy="mirrored", batch_size=batch_size, gutenberg_mirror=sys.argv[1] + "/no-mirror",
                 cache_dir=sys.argv[1] + "/cache", export_dir=sys.argv[1] + f"/export{batch_size}")
    try:
        training.run(cfg)
    except UserError as error:
        messages[batch_size] = str(error)
print(json.dumps(messages))
"""


def test_a_batch_size_the_replicas_cannot_share_evenly_is_refused_before_reading_data(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", BATCH_SIZES_OVER_TWO_REPLICAS, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    messages = json.loads(result.stdout.strip().splitlines()[-1])
    assert messages["7"] == (
        "--batch_size=7 does not split evenly among the 2 replicas of --strategy=mirrored (MirroredStrategy over 2 "
        "replica(s)), which each take an equal share of every batch; use a multiple of 2: --batch_size=6 or --batch_size=8"
    )
    assert messages["1"].endswith("use a multiple of 2: --batch_size=2")
    assert "--batch_size" not in messages["8"] and "gutenberg_mirror" in messages["8"]  # on to reading the books


def make_device_tree(root, *, accel=(), vfio=(), drm_accel=()):
    """A Linux device tree under `root`, as a TPU VM's looks: /dev/accelN, or /dev/vfio/N with the PCI device
    (vendor id, device id) of IOMMU group N in /sys, linked as the kernel links it."""
    (root / "dev").mkdir(parents=True, exist_ok=True)
    for index in accel:
        (root / "dev" / f"accel{index}").touch()
    for index in drm_accel:  # the kernel's compute accelerators (an Intel NPU): /dev/accel/accelN
        (root / "dev" / "accel").mkdir(exist_ok=True)
        (root / "dev" / "accel" / f"accel{index}").touch()
    if vfio:
        (root / "dev" / "vfio").mkdir()
        (root / "dev" / "vfio" / "vfio").touch()  # the VFIO container device, there whatever is passed through
    for group, (vendor, device_id) in enumerate(vfio):
        address = f"0000:00:{group + 4:02x}.0"
        device = root / "sys" / "devices" / "pci0000:00" / address
        device.mkdir(parents=True)
        (device / "vendor").write_text(vendor + "\n")
        (device / "device").write_text(device_id + "\n")
        (root / "dev" / "vfio" / str(group)).touch()
        members = root / "sys" / "kernel" / "iommu_groups" / str(group) / "devices"
        members.mkdir(parents=True)
        (members / address).symlink_to(f"../../../../devices/pci0000:00/{address}")
        (root / "sys" / "bus" / "pci" / "devices").mkdir(parents=True, exist_ok=True)
        (root / "sys" / "bus" / "pci" / "devices" / address).symlink_to(f"../../../devices/pci0000:00/{address}")
    return root


GOOGLE, NVIDIA = "0x1ae0", "0x10de"


@pytest.mark.parametrize(
    "machine, expected",
    [
        (dict(accel=range(4)), ["/dev/accel0", "/dev/accel1", "/dev/accel2", "/dev/accel3"]),  # TPU v4 VM (v2, v3 alike)
        (dict(vfio=[(GOOGLE, "0x0063")] * 4), ["/dev/vfio/0", "/dev/vfio/1", "/dev/vfio/2", "/dev/vfio/3"]),  # v5e-4
        (dict(vfio=[(GOOGLE, "0x006f")]), ["/dev/vfio/0"]),  # v6e-1
        (dict(accel=range(12)), [f"/dev/accel{index}" for index in range(12)]),  # in number order, not text order
        (dict(vfio=[(NVIDIA, "0x2330")]), []),  # an NVIDIA H100 passed through VFIO
        (dict(vfio=[(GOOGLE, "0x0042")]), []),  # Google's network card (gVNIC) handed to DPDK through VFIO
        (dict(drm_accel=[0]), []),  # an Intel NPU: /dev/accel/accel0
        ({}, []),  # no accelerator at all
    ],
)
def test_tpu_chips_are_found_on_tpu_vms_of_every_generation(tmp_path, machine, expected):
    root = make_device_tree(tmp_path, **machine)
    assert distribute.find_tpu_devices(root) == expected
    assert distribute.tpu_is_attached(root) == bool(expected)


@pytest.fixture
def no_tpu_node(monkeypatch):
    monkeypatch.delenv("COLAB_TPU_ADDR", raising=False)
    monkeypatch.delenv("TPU_NAME", raising=False)


def test_auto_on_a_tpu_tensorflow_cannot_use_says_so_and_trains_on_the_cpu(tmp_path, capsys, no_tpu_node):
    root = make_device_tree(tmp_path, vfio=[(GOOGLE, "0x0063")] * 4)

    strategy = distribute.make_strategy("auto", root=root)

    assert distribute.describe(strategy) == "the CPU"
    assert capsys.readouterr().err == (
        f"warning: this machine has a TPU (/dev/vfio/0 and 3 more) but TensorFlow cannot use it (tensorflow "
        f"{tf.__version__} is installed, without TPU support); to use it, install TensorFlow with TPU support "
        "(pip install tensorflow-tpu==2.20.0 -f https://storage.googleapis.com/libtpu-tf-releases/index.html; see BUILD.md). "
        "Training on the CPU instead (--strategy=default does so without this warning)\n"
    )


def test_tpu_on_a_tpu_tensorflow_cannot_use_is_a_clear_error(tmp_path, no_tpu_node):
    root = make_device_tree(tmp_path, accel=range(4))
    with pytest.raises(
        distribute.UserError,
        match=r"--strategy=tpu: this machine has a TPU \(/dev/accel0 and 3 more\) but TensorFlow cannot use it \(tensorflow "
        r".* without TPU support\); install TensorFlow with TPU support \(pip install tensorflow-tpu==2\.20\.0 .*\), or train "
        r"without it with --strategy=default$",
    ):
        distribute.make_strategy("tpu", root=root)


def test_tpu_without_a_tpu_is_a_clear_error(tmp_path, no_tpu_node):
    with pytest.raises(distribute.UserError, match=r"--strategy=tpu found no TPU to use \(this machine has no /dev/accel\* .*pick a TPU runtime"):
        distribute.make_strategy("tpu", root=make_device_tree(tmp_path))


def test_auto_without_a_tpu_picks_the_cpu_quietly(tmp_path, capsys, no_tpu_node):
    strategy = distribute.make_strategy("auto", root=make_device_tree(tmp_path, vfio=[(NVIDIA, "0x2330")]))
    assert distribute.describe(strategy) == "the CPU"
    assert capsys.readouterr().err == ""


def test_a_tpu_node_reached_over_the_network_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLAB_TPU_ADDR", "10.1.2.3:8470")  # what Colab's retired TPU-node runtimes set
    root = make_device_tree(tmp_path)
    with pytest.raises(distribute.UserError, match=r"\$COLAB_TPU_ADDR=10.1.2.3:8470 names a TPU reached over the network"):
        distribute.make_strategy("tpu", root=root)

    assert distribute.describe(distribute.make_strategy("auto", root=root)) == "the CPU"
    assert capsys.readouterr().err.startswith(
        "warning: $COLAB_TPU_ADDR=10.1.2.3:8470 names a TPU reached over the network (a TPU node), which charbook does "
        "not support"
    )
