"""A two-minute self-check of the hardware charbook would train on, printed as one JSON line to paste into a bug report.

It reports the devices TensorFlow sees, the strategy `--strategy=auto` picks, whether the LSTMs run
the fused cuDNN kernel (on a GPU), training characters per second at the default size (Config():
embedding 256, two LSTMs of 512 units, batches of 128 x 100) in float32 and in mixed precision, and
generation characters per second for one sample and for 64 together. Everything is the library's
own code (make_strategy, use_precision, build_model, make_optimizer, the compiled training step,
generate_samples) on random ids: this measures the hardware, not learning. Progress goes to stderr.

    python bench/accelerator_check.py [--quick] [--seconds=15] [--length=2000]

All measurements share one process, resetting the precision policy after each: a TPU is held by one
process at a time, and connecting to it again per measurement would cost more than the measurement.
"""

import collections
import dataclasses
import json
import pathlib
import platform
import string
import sys
import time
import traceback

_START = time.perf_counter()  # "seconds" in the result covers TensorFlow's import too

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import cli  # noqa: E402

cli.import_tensorflow_quietly()  # before the imports below start TensorFlow, with its C++ chatter

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import distribute  # noqa: E402
from config import Config  # noqa: E402
from models.char_lstm import build_model  # noqa: E402
from models.sampling import FIRST_CHUNK_SIZE, generate_samples  # noqa: E402
from pipeline.vocab import Vocabulary, build_vocabulary  # noqa: E402
from timing import measure_training  # noqa: E402  (bench/timing.py, beside this script)

flags.DEFINE_bool("quick", False, "Tiny model, batches and lengths: checks that everything runs; its figures mean nothing.")
flags.DEFINE_float("seconds", 15.0, "Seconds of timed training steps per precision, after a warm-up step (at least 2 steps).")
flags.DEFINE_integer("length", 2000, "Characters generated for one sample; each of 64 samples together gets a quarter of it.")
FLAGS = flags.FLAGS

# 99 characters and the out-of-vocabulary id: the 100 ids bench/generate.py times.
VOCABULARY_TEXT = string.printable[:-1]
QUICK_SETTINGS = dict(embedding_dim=8, rnn_units=16, batch_size=8, seq_len=10)  # a batch 8 TPU cores can share
QUICK_SECONDS, QUICK_LENGTH = 0.2, 64
GENERATE_BATCH = 64


def describe_hardware() -> dict:
    """Device kinds and counts, GPU names, TPU cores, and the CUDA and cuDNN versions TensorFlow was built with.

    Called once the strategy exists: TPU cores are logical devices once the strategy has initialized the TPU.
    """
    gpus = tf.config.list_physical_devices("GPU")
    build = tf.sysconfig.get_build_info()
    return {
        "devices": dict(collections.Counter(device.device_type for device in tf.config.list_physical_devices())),
        "gpus": [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus],
        "tpu_attached": distribute.tpu_is_attached(),
        "tpu_cores": len(tf.config.list_logical_devices("TPU")),
        "tensorflow_cuda_build": (
            {"cuda": build.get("cuda_version"), "cudnn": build.get("cudnn_version")} if build.get("is_cuda_build") else None
        ),
    }


def judge_cudnn(op_types: set[str] | None, hardware: dict, *, step_failed: bool = False) -> tuple[bool | None, str]:
    """Whether the training step's LSTMs run cuDNN's fused kernel (None where there is no GPU), and why.

    Keras 3 decides while tracing (keras/src/backend/tensorflow/rnn.py, cudnn_ok): tanh and sigmoid
    activations, no unroll, a bias, no recurrent dropout, and a GPU among the logical devices. It does
    not say which path it took, but the cuDNN path puts CudnnRNN ops (CudnnRNNV3) into the graph and
    the other a While loop, and a CudnnRNN op that cannot run fails the step rather than falling back.
    """
    if hardware["tpu_cores"]:
        return None, "a TPU: XLA compiles the LSTMs there; cuDNN is a GPU library"
    if not hardware["gpus"]:
        return None, "no GPU visible to TensorFlow: cuDNN is a GPU library"
    if step_failed:
        return None, "the float32 training step failed (see errors)"
    if op_types is None:
        return None, "the float32 training step ran, but its graph could not be read"
    cudnn_ops = sorted(op for op in op_types if op.startswith("CudnnRNN"))
    if cudnn_ops:
        return True, f"the float32 training step's graph holds {', '.join(cudnn_ops)}"
    return False, "the float32 training step's graph has no CudnnRNN op: the LSTMs run as a While loop of small kernels"


def measure_generation(cfg: Config, vocabulary: Vocabulary, *, num_samples: int, length: int) -> float:
    """Characters per second, all samples together, through generate_samples (what generate.py runs), once it is compiled."""
    model = build_model(cfg.model, vocabulary.size)
    settings = dict(seed_text="The ", temperature=0.8, seed=1, num_samples=num_samples)
    # The compiled loop takes the chunk length as an argument, so one short call compiles it for any length.
    for _ in generate_samples(model, vocabulary, length=FIRST_CHUNK_SIZE, **settings):
        pass
    start = time.perf_counter()
    generated = sum(len(text) for texts in generate_samples(model, vocabulary, length=length, **settings) for text in texts)
    return generated / (time.perf_counter() - start)


def main(argv):
    del argv
    cfg = dataclasses.replace(Config(), **QUICK_SETTINGS) if FLAGS.quick else Config()
    seconds = QUICK_SECONDS if FLAGS.quick else FLAGS.seconds
    length = QUICK_LENGTH if FLAGS.quick else FLAGS.length
    vocabulary = build_vocabulary([VOCABULARY_TEXT])
    errors = {}

    def attempt(name, measure):
        """measure()'s result; None, with the error kept for the report, if it fails (the rest still runs)."""
        print(f"accelerator_check: {name}...", file=sys.stderr, flush=True)
        try:
            return measure()
        except Exception as error:  # noqa: BLE001 - a failure is one more fact for the bug report
            traceback.print_exc(file=sys.stderr)
            message = str(error).strip()
            errors[name] = f"{type(error).__name__}: {message.splitlines()[0]}" if message else type(error).__name__
            return None

    strategy = attempt("strategy", lambda: distribute.make_strategy("auto"))
    if strategy is None:  # the default strategy still measures this machine's first device
        strategy = tf.distribute.get_strategy()
    hardware = describe_hardware()

    def train(precision):
        return measure_training(cfg, strategy, vocabulary.size, precision=precision, seconds=seconds)

    float32 = attempt("train_float32", lambda: train("float32"))
    # The mixed precision of each kind of hardware: float16 on GPUs, bfloat16 on TPUs and CPUs (a CPU has no fast float16).
    mixed = attempt("train_mixed_precision", lambda: train("float16" if hardware["gpus"] else "bfloat16"))
    cudnn_lstm, cudnn_reason = judge_cudnn(float32.op_types if float32 else None, hardware, step_failed=float32 is None)
    batch1 = attempt("generate_batch1", lambda: measure_generation(cfg, vocabulary, num_samples=1, length=length))
    batch64 = attempt(
        "generate_batch64", lambda: measure_generation(cfg, vocabulary, num_samples=GENERATE_BATCH, length=length // 4)
    )

    def rounded(chars_per_sec):
        return None if chars_per_sec is None else round(chars_per_sec, 1)  # a decimal for the small figures of --quick

    result = {
        "benchmark": "accelerator_check",
        "quick": FLAGS.quick,
        **hardware,
        "strategy": distribute.describe(strategy),
        "replicas": strategy.num_replicas_in_sync,
        "cudnn_lstm": cudnn_lstm,
        "cudnn_lstm_reason": cudnn_reason,
        "model": f"embedding {cfg.embedding_dim}, 2x{cfg.rnn_units} LSTM, {vocabulary.size} ids",
        "train_batch": f"{cfg.batch_size} x {cfg.seq_len}",
        "train_float32_chars_per_sec": rounded(float32.chars_per_sec) if float32 else None,
        "mixed_precision_policy": mixed.policy if mixed else None,
        "train_mixed_precision_chars_per_sec": rounded(mixed.chars_per_sec) if mixed else None,
        "generate_batch1_chars_per_sec": rounded(batch1),
        "generate_batch64_chars_per_sec": rounded(batch64),
        "errors": errors,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "seconds": round(time.perf_counter() - _START, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
