"""Training speed on this machine's CPU: Keras' LSTM against models/fast_lstm.LSTM, in float32 and bfloat16, in one JSON line.

    python bench/train.py [--seconds=15] [--rounds=5] [--quick]

Two sizes: the default model (Config(): embedding 256, two LSTMs of 512 units, batches of 128 x 100)
and issue 15's demo size (embedding 32, two LSTMs of 192, batches of 64 x 64; demo.flags has since moved to
embedding 64, 2x320 and batches of 32, see bench/README.md). For each, the real
compiled training step (bench/timing.py: build_model, make_optimizer, training.make_train_steps, on
random ids of 100) with the stock keras.layers.LSTM and with ours, in float32 and under
mixed_bfloat16 (--precision=bfloat16). All eight are compiled first, then timed in --rounds turns
of --seconds / --rounds each, and each figure is its best round. Ratios are
ours over the stock layer in float32, measured in the same run: other jobs on the machine slow all
of them alike, so compare ratios rather than absolute figures. `cpu_bf16` says whether the CPU
multiplies bfloat16 natively (AVX-512 BF16 or AMX), which --precision=auto then uses.

With --pytorch_python (a Python that has torch; charbook does not depend on it), each round also times
PyTorch's nn.LSTM doing the same step (bench/pytorch_train.py) at both sizes and precisions, in a subprocess
between charbook's measurements: `<size>_pytorch_<precision>_chars_per_sec`, and `<size>_ours_vs_pytorch`,
ours over PyTorch, each at its best precision.
Progress goes to stderr.
"""

import json
import pathlib
import platform
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import cli  # noqa: E402

cli.import_tensorflow_quietly()

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import hardware  # noqa: E402
from config import Config  # noqa: E402
from timing import make_timed_steps  # noqa: E402  (bench/timing.py, beside this script)

flags.DEFINE_float("seconds", 15.0, "Seconds of timed training steps per measurement, split into --rounds (each at least 2 steps).")
flags.DEFINE_integer("rounds", 5, "Rounds of all measurements in turn; each figure is its best round.")
flags.DEFINE_bool("quick", False, "Tiny models and batches, 0.2 seconds each: checks that everything runs; its figures mean nothing.")
flags.DEFINE_string(
    "pytorch_python", None, "A Python with torch installed: also time PyTorch's nn.LSTM doing the same step (bench/pytorch_train.py)."
)
FLAGS = flags.FLAGS

VOCAB_SIZE = 100
SIZES = {
    "default": Config(),
    "demo": Config(embedding_dim=32, rnn_units=192, batch_size=64, seq_len=64),  # issue 15's demo size, kept so runs compare
}
QUICK_SIZES = {
    "default": Config(embedding_dim=8, rnn_units=16, batch_size=8, seq_len=10),
    "demo": Config(embedding_dim=4, rnn_units=8, batch_size=4, seq_len=6),
}
LAYERS = {"stock": False, "ours": True}  # name -> build_model's fast_cpu_lstm
PRECISIONS = ("float32", "bfloat16")


def main(argv):
    del argv
    sizes = QUICK_SIZES if FLAGS.quick else SIZES
    if FLAGS.pytorch_python:
        check_pytorch(FLAGS.pytorch_python)  # before minutes of compiling
    seconds = 0.2 if FLAGS.quick else FLAGS.seconds
    strategy = tf.distribute.get_strategy()
    timers = {}
    for size, cfg in sizes.items():
        for layer, fast_cpu_lstm in LAYERS.items():
            for precision in PRECISIONS:
                name = f"{size}_{layer}_{precision}_chars_per_sec"
                print(f"train: compiling {name}...", file=sys.stderr, flush=True)
                timers[name] = make_timed_steps(cfg, strategy, VOCAB_SIZE, precision=precision, fast_cpu_lstm=fast_cpu_lstm)
    # Rounds of every measurement in turn, the best of each kept: a burst of other work on the machine
    # slows the measurements it falls on, and the best rounds are the ones it spared.
    best = dict.fromkeys(timers, 0.0)
    for round_number in range(FLAGS.rounds):
        print(f"train: round {round_number + 1} of {FLAGS.rounds}", file=sys.stderr, flush=True)
        for name, timed in timers.items():
            best[name] = max(best[name], timed.time_steps(seconds / FLAGS.rounds))
        if FLAGS.pytorch_python:
            for name, speed in time_pytorch(FLAGS.pytorch_python, sizes, seconds / FLAGS.rounds).items():
                best[name] = speed if isinstance(speed, str) else max(best.get(name, 0.0), speed)  # a str says why there is no figure
    result = {"benchmark": "train", "quick": FLAGS.quick, "rounds": FLAGS.rounds}
    for size in sizes:
        for name in best:
            if name.startswith(f"{size}_"):
                result[name] = best[name] if isinstance(best[name], str) else round(best[name], 1)
        for precision in PRECISIONS:
            baseline = result[f"{size}_stock_float32_chars_per_sec"]
            result[f"{size}_ours_{precision}_speedup"] = round(result[f"{size}_ours_{precision}_chars_per_sec"] / baseline, 2)
        if FLAGS.pytorch_python:
            ours, pytorch = (
                max(result.get(f"{size}_{layer}_{precision}_chars_per_sec", 0.0) for precision in PRECISIONS) for layer in ("ours", "pytorch")
            )
            result[f"{size}_ours_vs_pytorch"] = round(ours / pytorch, 2)
    result.update(
        cpu_bf16=hardware.cpu_has_native_bfloat16(),
        sizes={size: f"embedding {cfg.embedding_dim}, 2x{cfg.rnn_units} LSTM, batch {cfg.batch_size} x {cfg.seq_len}" for size, cfg in sizes.items()},
        tensorflow=tf.__version__,
        machine=f"{platform.machine()}, {platform.platform()}",
    )
    print(json.dumps(result))


def check_pytorch(python: str) -> None:
    """Exits with a clear message unless `python` runs and imports torch."""
    try:
        run = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True, check=False)
    except OSError as error:
        sys.exit(f"train: cannot run --pytorch_python={python}: {error}. Give the path of a Python that has torch installed.")
    if run.returncode != 0:
        sys.exit(f"train: --pytorch_python={python} cannot import torch. Give a Python that has it (e.g. a venv with pip install torch).")


def time_pytorch(python: str, sizes: dict[str, Config], seconds: float) -> dict[str, float]:
    """bench/pytorch_train.py run by `python` at these sizes: its chars/s figures by name."""
    shapes = {size: [cfg.embedding_dim, cfg.rnn_units, cfg.batch_size, cfg.seq_len] for size, cfg in sizes.items()}
    command = [python, str(pathlib.Path(__file__).with_name("pytorch_train.py")), f"--sizes={json.dumps(shapes)}"]
    run = subprocess.run([*command, f"--vocab_size={VOCAB_SIZE}", f"--seconds={seconds}"], capture_output=True, text=True, check=False)
    if run.returncode != 0:
        sys.exit(f"train: PyTorch's timing failed (--pytorch_python={python}); its errors:\n{run.stderr.strip()}")
    report = json.loads(run.stdout.splitlines()[-1])
    return {name: speed for name, speed in report.items() if name.endswith(("_chars_per_sec", "_unavailable"))}


if __name__ == "__main__":
    app.run(main)
