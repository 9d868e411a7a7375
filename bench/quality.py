"""Validation bits/char after a fixed wall-clock budget of training: recipes (and speed-ups) compared at equal time.

    python bench/quality.py --flagfile=demo.flags --seconds=300 [--corpora=tinyshakespeare,books] [any train.py flag]

Each corpus is trained with the recipe the flags give (model size, batch, sequence length, learning rate
and schedule, --precision) through training.run, what train.py runs, into a temporary export:

- tinyshakespeare: ../shared/corpora/tinyshakespeare/input.txt (or $CHARBOOK_CORPORA/...), its last 10% held out for validation;
- books: the six default Gutenberg books from the mirror in ../shared/corpora/gutenberg, the last
  --validation_fraction of each held out (as `make train`).

The budget is train.py's --train_minutes (step_plan.py): each run plans the steps that fit from the speed
of its first ones, before the learning rate starts to decay. The JSON reports, for each corpus, the steps
trained, the seconds training really took (validation and data preparation included), the best validation
bits/char and a sample at temperature 0.6. Progress goes to stderr. (Runs before session 11 timed the step
on random ids first and trained that many steps: bench/README.md's earlier figures came from that.)
"""

import contextlib
import dataclasses
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cli  # noqa: E402

cli.import_tensorflow_quietly()

import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

import api  # noqa: E402
import training  # noqa: E402
from config import DEFAULT_BOOKS  # noqa: E402

CORPORA_DIR = pathlib.Path(os.environ.get("CHARBOOK_CORPORA", ROOT.parent / "shared" / "corpora"))
CORPORA = {
    "tinyshakespeare": dict(corpus="files", files=str(CORPORA_DIR / "tinyshakespeare" / "input.txt"), validation_fraction=0.1),
    "books": dict(corpus="gutenberg", books=DEFAULT_BOOKS, gutenberg_mirror=str(CORPORA_DIR / "gutenberg")),
}

flags.DEFINE_float("seconds", 300.0, "Wall-clock budget of training per corpus, in seconds.")
flags.DEFINE_list("corpora", list(CORPORA), f"Which corpora to train on: {', '.join(CORPORA)}.")
cli.define_config_flags("run", "data", "model", "train")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    recipe = cli.config_from_flags("run", "data", "model", "train")
    result = {
        "benchmark": "quality",
        "seconds_budget": FLAGS.seconds,
        "recipe": {
            name: getattr(recipe, name)
            for name in (
                "embedding_dim", "rnn_units", "dropout", "batch_size", "seq_len", "learning_rate", "warmup_steps",
                "lr_decay", "final_lr_fraction", "adam_beta2", "stream_windows", "precision", "seed",
            )
        },
    }
    for name in FLAGS.corpora:
        with tempfile.TemporaryDirectory(prefix="charbook-quality-") as scratch:
            cfg = dataclasses.replace(
                recipe, **CORPORA[name], steps=0, train_minutes=FLAGS.seconds / 60, export_dir=f"{scratch}/export", resume=False
            )
            start = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr):  # train.py's progress lines; stdout holds the JSON alone
                trained = training.run(cfg)
            seconds = time.perf_counter() - start
            sample = api.load(trained.export_dir).generate("It was ", length=300, temperature=0.6, seed=1)
        result[f"{name}_validation_bits_per_char"] = round(trained.validation_bits_per_char, 4)
        result[f"{name}_steps"] = trained.steps_completed
        result[f"{name}_train_seconds"] = round(seconds, 1)
        result[f"{name}_sample"] = sample
    result.update(tensorflow=tf.__version__, machine=platform.platform())
    print(json.dumps(result))


if __name__ == "__main__":
    cli.run(main)
