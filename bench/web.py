"""Speed of the web page in headless Chromium, next to the Python generator's batch-1 speed, measured in the same run.

Models of issue 15's demo size (embedding 32, 2x192 LSTM; demo.flags now has embedding 64, 2x320) and the default size (embedding 256, 2x512),
random weights and 100 ids, exported with export.write_export and written out with web_export.write_site; the
folder is served on 127.0.0.1. For each: characters per second as the page's worker counts them (after reading the
seed text; the best of --repeats fresh pages; also with ?runtime=js, its plain-JavaScript products), and seconds
from the page's navigation start to its first character (their median: the weights are fetched and read, then
Generate is clicked). Python's speed is bench/generate.py's chars_per_sec_of_ours, batch 1. With --export_dir (a
trained export, such as `make train`'s exports/demo) it also scores the page's float32, float16 and int8 weights on
held-out books, in bits/char.

    python bench/web.py [--web_length=3000] [--export_dir=exports/demo --held_out_books=50133,31469]
"""

import dataclasses
import importlib.util
import json
import pathlib
import platform
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cli  # noqa: E402

cli.import_tensorflow_quietly()  # before the imports below start TensorFlow, with its C++ chatter

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import evaluation  # noqa: E402
import export  # noqa: E402
import web_browser  # noqa: E402
import web_export  # noqa: E402
from config import WEB_WEIGHTS, Config  # noqa: E402
from models.char_lstm import build_model  # noqa: E402
from pipeline.datasets import make_evaluation_books  # noqa: E402
from pipeline.vocab import build_vocabulary  # noqa: E402

# bench/generate.py, loaded by path: `import generate` would find the project's generate.py.
_spec = importlib.util.spec_from_file_location("bench_generate", ROOT / "bench" / "generate.py")
bench_generate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_generate)

flags.DEFINE_integer("web_length", 3000, "Characters per run in the browser (the default-size model gets a third).")
flags.DEFINE_integer("repeats", 3, "Fresh pages per model in the browser: the fastest run counts, and the median first character.")
flags.DEFINE_string("export_dir", "", "A trained export whose page weights are scored on --held_out_books (optional).")
flags.DEFINE_list("held_out_books", ["50133", "31469"], "Gutenberg books the export did not train on.")
flags.DEFINE_string("gutenberg_mirror", str(ROOT.parent / "shared" / "corpora" / "gutenberg"), "Where the held-out books are.")
FLAGS = flags.FLAGS

SIZES = {"demo": Config(embedding_dim=32, rnn_units=192), "default": Config()}


def write_random_site(cfg: Config, directory: pathlib.Path) -> pathlib.Path:
    """The page of a randomly initialised model of cfg's size with bench/generate.py's 100 ids."""
    vocabulary = build_vocabulary(["".join(chr(code) for code in range(32, 32 + bench_generate.VOCAB_SIZE - 1))])
    model = build_model(cfg.model, vocabulary.size)
    export.write_export(directory / "export", model=model, config=cfg, vocabulary=vocabulary, steps_completed=0)
    return web_export.write_site(export.load_export(directory / "export"), directory / "site")


def measure_page(browser, url: str, *, length: int, repeats: int) -> tuple[float, float, str]:
    """Characters per second (the best of `repeats` fresh pages); seconds from navigation start to the first
    character (their median); the runtime the page chose."""
    speeds, first_char_seconds = [], []
    for _ in range(repeats):
        page = browser.new_page()
        page.goto(url)
        page.fill("#seed_text", "It was the best of times, ")
        page.fill("#length", str(length))
        page.click("#generate")  # waits until the model is loaded and the button enabled
        page.wait_for_function("charbook.lastRun !== null", timeout=300_000)
        run = page.evaluate("charbook.lastRun")
        speeds.append(run["chars"] / run["seconds"])
        first_char_seconds.append(page.evaluate("charbook.firstCharSeconds"))
        runtime = page.evaluate("charbook.runtime")
        page.close()
    return max(speeds), statistics.median(first_char_seconds), runtime


def score_weights(export_dir: str, books: tuple[int, ...]) -> dict:
    """Bits/char of the page's weights in each number type on `books`, scored as evaluate.py scores an export."""
    exported = export.load_export(export_dir)
    cfg = dataclasses.replace(exported.config, corpus="gutenberg", books=books, gutenberg_mirror=FLAGS.gutenberg_mirror)
    scores = {}
    for dtype in WEB_WEIGHTS:
        evaluate = evaluation.make_evaluate(web_export.browser_model(exported, weights_dtype=dtype))
        book_scores = []
        for book in make_evaluation_books(cfg, vocabulary=exported.vocabulary):
            bits_per_char, num_chars = evaluate(book.batches)
            book_scores.append(evaluation.Score(book.name, bits_per_char, num_chars, book.unknown_chars))
        shrunk = [web_export.shrink(tensor, dtype) for tensor in web_export.site_tensors(exported)]
        weights_bytes = sum(t.data.nbytes + (0 if t.scales is None else t.scales.nbytes) for t in shrunk)
        scores[dtype] = {"bits_per_char": round(evaluation.combine_scores(book_scores).bits_per_char, 4), "weights_mb": round(weights_bytes / 1e6, 2)}
    return scores


def main(argv):
    del argv
    executable, why_not = web_browser.find_chromium()
    if executable is None:
        sys.exit(f"error: {why_not}")
    results = {"benchmark": "web", "models": "demo: embedding 32, 2x192 LSTM; default: embedding 256, 2x512; 100 ids, random weights"}
    with tempfile.TemporaryDirectory() as scratch, web_browser.launch_chromium(executable) as browser:
        for name, cfg in SIZES.items():
            site = write_random_site(cfg, pathlib.Path(scratch) / name)
            length = FLAGS.web_length if name == "demo" else FLAGS.web_length // 3
            with web_browser.serve_folder(site) as url:
                chars_per_sec, first_char_seconds, runtime = measure_page(browser, url, length=length, repeats=FLAGS.repeats)
                # The same page with its matrix products in plain JavaScript: what WebAssembly SIMD is measured against.
                js_chars_per_sec, _, _ = measure_page(browser, url + "?runtime=js", length=length // 5, repeats=1)
            results[f"{name}_chars_per_sec"] = round(chars_per_sec)
            results[f"{name}_first_char_seconds"] = round(first_char_seconds, 3)
            results[f"{name}_js_chars_per_sec"] = round(js_chars_per_sec)
            results["runtime"] = runtime
            results[f"{name}_weights_mb"] = round(sum(p.stat().st_size for p in site.glob("weights-*.bin")) / 1e6, 2)
        results["browser"] = browser.version
    for name, cfg in SIZES.items():
        python = bench_generate.chars_per_sec_of_ours(1, 2000, settings=cfg.model)
        results[f"python_{name}_batch1_chars_per_sec"] = round(python)
    if FLAGS.export_dir:
        results["held_out_books"] = ",".join(FLAGS.held_out_books)
        results["held_out_bits_per_char"] = score_weights(FLAGS.export_dir, tuple(int(book) for book in FLAGS.held_out_books))
    results["tensorflow"] = tf.__version__
    results["machine"] = f"{platform.machine()}, {platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    print(json.dumps(results))


if __name__ == "__main__":
    app.run(main)
