"""Input pipeline speed and memory on the shared Gutenberg books repeated to 100 MB.

Prints one JSON object: batches delivered per second by make_datasets once its data is prepared
(`chars_per_sec`), first-time preparation (`prepare_chars_per_sec`), the peak resident memory of a
whole fresh process that prepares and reads a 10 MB and a 100 MB corpus (each the median of
--repeats processes), and, in the same run, the
classic TensorFlow tutorial pipeline on the same ids (from_tensor_slices over every id, batch(seq_len + 1),
map(split_input_target), shuffle(10000), batch(128)). The machine may be shared: compare the ratios.

    python bench/pipeline.py [--corpus_mb=100] [--seconds=15] [--repeats=3]

The corpus is temporary copies of the books under /tmp, deleted at the end.
"""

import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

import cli  # noqa: E402

cli.import_tensorflow_quietly()  # before the imports below start TensorFlow, with its C++ chatter

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from config import Config  # noqa: E402
from pipeline.datasets import make_datasets, read_books  # noqa: E402
from pipeline.vocab import build_vocabulary  # noqa: E402

flags.DEFINE_integer("corpus_mb", 100, "Size of the large corpus; the small one is a tenth of it.")
flags.DEFINE_float("seconds", 15.0, "How long each pipeline delivers batches while timed.")
CORPORA_DIR = pathlib.Path(os.environ.get("CHARBOOK_CORPORA", PROJECT_ROOT.parent / "shared" / "corpora"))
flags.DEFINE_string("books_dir", str(CORPORA_DIR / "gutenberg/cache/epub"), "Where the books are (<id>/pg<id>.txt); CHARBOOK_CORPORA sets the default.")
flags.DEFINE_integer("repeats", 3, "Fresh processes per corpus size; each number is the median of them.")
flags.DEFINE_string("child_files", "", "Internal: run one measurement on these files in this process.")
FLAGS = flags.FLAGS
WARM_UP_BATCHES = 50


def make_corpus(directory: pathlib.Path, megabytes: float) -> None:
    """Copies of the Gutenberg books in `directory` until they add up to `megabytes`."""
    books = sorted(pathlib.Path(FLAGS.books_dir).glob("*/pg*.txt"))
    if not books:
        raise SystemExit(f"no books (<id>/pg<id>.txt) in --books_dir={FLAGS.books_dir}; set it or CHARBOOK_CORPORA")
    directory.mkdir(parents=True)
    total, copy = 0, 0
    while total < megabytes * 1e6:
        for book in books:
            shutil.copyfile(book, directory / f"{copy:04d}-{book.name}")
            total += book.stat().st_size
        copy += 1


def time_batches(batches: tf.data.Dataset, seconds: float) -> float:
    """Characters of input per second, after WARM_UP_BATCHES batches, for `seconds`."""
    iterator = iter(batches)
    for _ in range(WARM_UP_BATCHES):
        next(iterator)
    start, chars = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        inputs, _ = next(iterator)
        chars += int(tf.size(inputs))
    return chars / (time.perf_counter() - start)


def measure_in_this_process(files: str) -> dict:
    """Prepare the corpus of `files` (first time), then read it like training does; with this process's peak memory."""
    cfg = Config(corpus="files", files=files, cache_dir=tempfile.mkdtemp(prefix="charbook-bench-cache-"))
    try:
        start = time.perf_counter()
        data = make_datasets(cfg, log=lambda message: None)
        prepare_seconds = time.perf_counter() - start
        corpus_chars = data.train_chars + data.validation_chars
        chars_per_sec = time_batches(data.train, FLAGS.seconds)
    finally:
        shutil.rmtree(cfg.cache_dir)
    return {
        "corpus_chars": corpus_chars,
        "prepare_chars_per_sec": corpus_chars / prepare_seconds,
        "chars_per_sec": chars_per_sec,
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """The most memory this process has held resident (VmHWM), in MB."""
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_of(runs: list[dict]) -> dict:
    return {key: float(np.median([run[key] for run in runs])) for key in runs[0]}


def measure_in_fresh_process(files: str) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, f"--child_files={files}", f"--seconds={FLAGS.seconds}"],
        capture_output=True, text=True, check=False,
    )
    if result.returncode:
        raise SystemExit(f"the measurement process failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def tutorial_chars_per_sec(files: str, seq_len: int = 100, batch_size: int = 128) -> float:
    """The TensorFlow text-generation tutorial's pipeline on the same ids (all held in one tensor)."""
    cfg = Config(corpus="files", files=files)
    vocabulary = build_vocabulary(book.text for book in read_books(cfg))
    ids = np.concatenate([vocabulary.encode_text(book.text) for book in read_books(cfg)])
    sequences = tf.data.Dataset.from_tensor_slices(ids.astype(np.int32)).batch(seq_len + 1, drop_remainder=True)
    batches = (
        sequences.map(lambda window: (window[:-1], window[1:]))
        .shuffle(10000)
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    return time_batches(batches, FLAGS.seconds)


def main(argv):
    if FLAGS.child_files:
        print(json.dumps(measure_in_this_process(FLAGS.child_files)))
        return
    workspace = pathlib.Path(tempfile.mkdtemp(prefix="charbook-bench-"))
    try:
        make_corpus(workspace / "small", FLAGS.corpus_mb / 10)
        make_corpus(workspace / "large", FLAGS.corpus_mb)
        # A process's peak memory varies from run to run (tf.data's buffers and malloc arenas grow with
        # timing), so each size runs `repeats` times, alternating, and each number is the median.
        runs = {"small": [], "large": []}
        for _ in range(FLAGS.repeats):
            for size in runs:
                runs[size].append(measure_in_fresh_process(str(workspace / size / "*.txt")))
        small, large = (median_of(runs[size]) for size in ("small", "large"))
        tutorial = tutorial_chars_per_sec(str(workspace / "large" / "*.txt"))
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    print(
        json.dumps(
            {
                "chars_per_sec": round(large["chars_per_sec"]),
                "tutorial_chars_per_sec": round(tutorial),
                "speedup_vs_tutorial": round(large["chars_per_sec"] / tutorial, 2),
                "prepare_chars_per_sec": round(large["prepare_chars_per_sec"]),
                f"peak_rss_mb_{FLAGS.corpus_mb / 10:g}mb": round(small["peak_rss_mb"], 1),
                f"peak_rss_mb_{FLAGS.corpus_mb}mb": round(large["peak_rss_mb"], 1),
                "rss_growth_mb": round(large["peak_rss_mb"] - small["peak_rss_mb"], 1),
                "peak_rss_mb_runs": {size: [round(run["peak_rss_mb"]) for run in runs[size]] for size in runs},
                "corpus_chars": int(large["corpus_chars"]),
                "seq_len": 100,
                "batch_size": 128,
                "cpus": os.cpu_count(),
                "load_average": round(os.getloadavg()[0], 2),
                "note": "the machine is shared: absolute numbers are noisy, ratios measured in one run are not",
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
