"""Bad input and faults, through the real command-line tools: one clear message every time, nothing lost.

Each case runs train.py, generate.py or evaluate.py in a subprocess, exactly as a user would, and
expects exit status 2 and stderr that names the problem and says what to do, with no traceback.
A failed train.py leaves no export behind; a failed download leaves nothing in the cache.
"""

import io
import json
import os
import random
import shutil
import subprocess
import sys
import zipfile

import pytest

import export
from config import Config
from conftest import PROJECT_ROOT, cut_short, ok, redirect, stall, status
from models.char_lstm import build_model
from pipeline.vocab import build_vocabulary

# A model and batches so small that a whole training run takes seconds.
TINY = ["--embedding_dim=4", "--rnn_units=8", "--seq_len=10", "--batch_size=4", "--steps=2", "--sample_length=0"]
TEXT = "It was the best of times, it was the worst of times.\n" * 40


def run(script, *flags, env=None):
    # CHARBOOK_DEBUG from the shell that runs the tests would add the tracebacks these tests rule out.
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / script), *flags],
        capture_output=True,
        text=True,
        timeout=120,
        env={**{k: v for k, v in os.environ.items() if k != "CHARBOOK_DEBUG"}, **(env or {})},
    )


def assert_clear_failure(result, problem, fix):
    assert result.returncode == 2, result.stderr
    assert problem in result.stderr
    assert fix in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("error: ") == 1, result.stderr


def run_train(tmp_path, *flags, env=None):
    """train.py with tiny settings, its cache and export inside `tmp_path`."""
    return run(
        "train.py", *TINY, f"--cache_dir={tmp_path / 'cache'}", f"--export_dir={tmp_path / 'export'}", *flags, env=env
    )


# --- train.py on files: what the decoder and the pipeline refuse ---


def elf_program():
    rng = random.Random(0)
    return b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00\x01\x00\x00\x00" + rng.randbytes(4096)


def zip_archive():
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("novel.txt", TEXT * 10)
    return archive.getvalue()


@pytest.mark.parametrize(
    "files, content, problem, fix",
    [
        ("missing.txt", None, "no files match --files pattern", "check the path"),
        ("empty_dir/*.txt", None, "no files match --files pattern", "check the path"),
        ("empty_dir", None, "empty_dir' is a directory", "give a pattern of files in it, e.g. '"),
        ("book.txt", b"", "book.txt holds no text", "remove it from the corpus"),
        ("program", elf_program(), "program looks binary", "pass text files only"),
        ("book.zip", zip_archive(), "book.zip looks binary", "pass text files only"),
        ("noise.txt", random.Random(1).randbytes(4096), "noise.txt looks binary", "pass text files only"),
        ("book.txt", TEXT.encode().replace(b"\n", b"\x00\n"), "book.txt looks binary (it contains NUL", "pass text files only"),
        ("book.txt", TEXT.encode("utf-16-le"), "book.txt looks binary", "UTF-16 text needs a byte-order mark"),
        (
            "book.txt",
            b"\xff\xfe" + TEXT.encode("utf-16-le") + b"!",  # an odd number of bytes cannot be UTF-16
            "book.txt starts with a UTF-16 byte-order mark but is not valid UTF-16",
            "save it again, as UTF-8 if you can",
        ),
        ("book.txt", b"Too short.\n", "fewer than one batch (--batch_size=4)", "add text or lower --batch_size or --seq_len"),
    ],
)
def test_bad_text_files(tmp_path, files, content, problem, fix):
    (tmp_path / "empty_dir").mkdir()
    if content is not None:
        (tmp_path / files).write_bytes(content)
    result = run_train(tmp_path, "--corpus=files", f"--files={tmp_path / files}")
    assert_clear_failure(result, problem, fix)
    assert not (tmp_path / "export").exists()


# --- train.py: bad settings ---


@pytest.mark.parametrize("value", [0, -1, 10**9])
def test_model_and_batch_sizes_out_of_range_are_all_named_at_once(tmp_path, value):
    sizes = ["seq_len", "batch_size", "embedding_dim", "rnn_units"]
    result = run_train(tmp_path, "--books=11", *[f"--{name}={value}" for name in sizes])
    for name in sizes:
        assert_clear_failure(result, f"--{name}={value} must be between 1 and ", "invalid settings")
    assert not (tmp_path / "export").exists()


@pytest.mark.parametrize(
    "flags, problem, fix",
    [
        (["--corpus=library"], "--corpus='library' is not one of gutenberg, files", "or tfds:NAME"),
        (["--books=12a"], "--books: '12a' is not an ebook id", "write e.g. 84 or 1000-1100"),
        (["--books=5-3"], "--books: the range '5-3' runs backwards", "write 3-5"),
        (["--books=@missing.txt"], "cannot read the --books file 'missing.txt'", "give @ and the path of a file of ebook ids"),
        (["--gutenberg_mirror=htp://www.gutenberg.org"], "--gutenberg_mirror='htp://www.gutenberg.org' is neither", "https://www.gutenberg.org"),
        (["--learning_rate=5"], "--learning_rate=5.0 must be above 0 and at most 1", "invalid settings"),
        (["--steps=8000", "--train_minutes=10"], "--steps=8000 and --train_minutes=10 both say how long to train", "--train_minutes=0"),
    ],
)
def test_bad_settings(tmp_path, flags, problem, fix):
    assert_clear_failure(run_train(tmp_path, *flags), problem, fix)
    assert not (tmp_path / "export").exists()


def test_a_diverging_run_stops_and_exports_nothing(gutenberg_mirror, tmp_path):
    # 128 units at --learning_rate=1: the loss climbs far above a uniform guess's within a few steps.
    sizes = ["--embedding_dim=16", "--rnn_units=128", "--seq_len=32", "--batch_size=16", "--steps=40"]
    result = run_train(tmp_path, "--books=11", f"--gutenberg_mirror={gutenberg_mirror}", *sizes, "--learning_rate=1")
    assert_clear_failure(
        result,
        "training diverged at step 20: the loss averaged",
        "more than 3 times the 6.25 bits/char of a uniform guess over its 76 ids; lower --learning_rate (now 1)",
    )
    assert not (tmp_path / "export").exists()


def test_export_dir_holding_other_files_is_refused_before_training_and_kept(tmp_path):
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "book.txt").write_text(TEXT)
    result = run_train(tmp_path, "--corpus=files", f"--files={tmp_path / 'texts' / '*.txt'}", f"--export_dir={tmp_path / 'texts'}")
    assert_clear_failure(result, "is not an export of charbook's (it holds book.txt, and no charbook.json)", "choose another --export_dir")
    assert (tmp_path / "texts" / "book.txt").read_text() == TEXT
    assert "training" not in result.stdout


def test_folders_that_only_look_like_charbooks_are_refused_before_training_and_kept(tmp_path):
    (tmp_path / "book.txt").write_text(TEXT)
    (tmp_path / "project" / "saved_model").mkdir(parents=True)
    for name in ("config.json", "vocab.json", "model.weights.h5", "saved_model/mine.pb"):
        (tmp_path / "project" / name).write_text("the user's own")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "checkpoint").write_text("the user's own")
    for flag, problem in [
        (f"--export_dir={tmp_path / 'project'}", "is not an export of charbook's (it holds config.json, model.weights.h5"),
        (f"--checkpoint_dir={tmp_path / 'mine'}", "holds files that are not charbook's checkpoints (checkpoint, and no"),
    ]:
        result = run_train(tmp_path, "--corpus=files", f"--files={tmp_path / 'book.txt'}", flag)
        assert_clear_failure(result, problem, f"choose another {flag.split('=')[0]}")
        assert "training" not in result.stdout
    assert (tmp_path / "project" / "config.json").read_text() == "the user's own"
    assert (tmp_path / "mine" / "checkpoint").read_text() == "the user's own"


@pytest.mark.parametrize("flag", ["--checkpoint_dir", "--logdir"])
def test_checkpoints_or_logs_inside_the_export_are_refused_before_training(tmp_path, flag):
    (tmp_path / "book.txt").write_text(TEXT)
    result = run_train(tmp_path, "--corpus=files", f"--files={tmp_path / 'book.txt'}", f"{flag}={tmp_path / 'export' / 'inside'}")
    assert_clear_failure(result, f"{flag}={tmp_path / 'export' / 'inside'} is inside --export_dir", "leave it out for the default beside it")
    assert not (tmp_path / "export").exists()


def test_cache_dir_that_is_a_file(tmp_path):
    (tmp_path / "a_file").write_text("not a directory")
    (tmp_path / "book.txt").write_text(TEXT)
    result = run_train(tmp_path, "--corpus=files", f"--files={tmp_path / 'book.txt'}", f"--cache_dir={tmp_path / 'a_file'}")
    assert_clear_failure(result, f"Not a directory: {tmp_path / 'a_file'}", "a file stands where a directory is needed")
    assert not (tmp_path / "export").exists()


# --- train.py: downloads from a mirror on 127.0.0.1 ---

BOOK = f"*** START OF THE PROJECT GUTENBERG EBOOK FIVE ***\n{TEXT}*** END OF THE PROJECT GUTENBERG EBOOK FIVE ***\n".encode()


@pytest.mark.parametrize(
    "responses, flags, problem, fix",
    [
        ([status(404)], [], "Gutenberg book 5 is not on the mirror", "check the id"),
        ([status(500)], [], "the server answered 500 Internal Server Error, 3 times", "try again later or use another --gutenberg_mirror"),
        ([cut_short(BOOK[:100], len(BOOK))], [], f"the download was cut short (100 of {len(BOOK):,} bytes)", "try again later"),
        ("stall", ["--download_timeout=0.2"], "no answer within --download_timeout=0.2 seconds", "try again later"),
    ],
)
def test_failed_downloads(scripted_mirror, tmp_path, responses, flags, problem, fix):
    if responses == "stall":
        responses = [stall(scripted_mirror.released, BOOK, after_headers=False)]
    scripted_mirror.book(5, *responses)
    result = run_train(tmp_path, "--books=5", f"--gutenberg_mirror={scripted_mirror.url}", *flags)
    assert_clear_failure(result, problem, fix)
    assert not (tmp_path / "export").exists()
    assert not list((tmp_path / "cache").glob("gutenberg/*"))  # nothing half-downloaded is kept


def test_a_redirected_download_trains(scripted_mirror, tmp_path):
    scripted_mirror.book(5, redirect(302, "/files/5/5-0.txt"))
    scripted_mirror.script["/files/5/5-0.txt"] = [ok(BOOK)]
    result = run_train(tmp_path, "--books=5", f"--gutenberg_mirror={scripted_mirror.url}")
    assert result.returncode == 0, result.stderr
    assert export.load_export(tmp_path / "export").steps_completed == 2


@pytest.mark.parametrize(
    "mirror, problem, fix",
    [
        ("GUTENBERG", "Gutenberg book 999999 is not in the mirror directory", "check the id or --gutenberg_mirror"),
        ("nowhere", "the --gutenberg_mirror directory", "a web mirror starts with https://"),
    ],
)
def test_mirror_directory_without_the_book(gutenberg_mirror, tmp_path, mirror, problem, fix):
    mirror = gutenberg_mirror if mirror == "GUTENBERG" else tmp_path / mirror
    result = run_train(tmp_path, "--books=999999", f"--gutenberg_mirror={mirror}")
    assert_clear_failure(result, problem, fix)
    assert not (tmp_path / "export").exists()


# --- generate.py and evaluate.py: damaged exports ---


@pytest.fixture(scope="module")
def good_export(tmp_path_factory):
    """A small, whole export with untrained weights (generation and evaluation need no training)."""
    directory = tmp_path_factory.mktemp("good") / "export"
    config = Config(embedding_dim=4, rnn_units=8, seq_len=10, batch_size=4)
    model = build_model(config.model, build_vocabulary([TEXT]).size)
    export.write_export(directory, model=model, config=config, vocabulary=build_vocabulary([TEXT]), steps_completed=0)
    return directory


def edit_json(path, change):
    values = json.loads(path.read_text())
    change(values)
    path.write_text(json.dumps(values))


def flip_a_bit(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def drop_last_char(export_dir):
    edit_json(export_dir / "vocab.json", lambda v: v.__setitem__("chars", v["chars"][:-1]))


def drop_last_char_everywhere(export_dir):  # the vocabulary and config.json agree, but not with the weights
    drop_last_char(export_dir)
    edit_json(export_dir / "config.json", lambda v: v.__setitem__("vocab_size", v["vocab_size"] - 1))


DAMAGES = {
    "no config.json": (lambda d: (d / "config.json").unlink(), "config.json is missing", "export the model again"),
    "no vocab.json": (lambda d: (d / "vocab.json").unlink(), "vocab.json is missing", "export the model again"),
    "no weights": (lambda d: (d / "model.weights.h5").unlink(), "model.weights.h5 is missing", "export the model again"),
    "truncated weights": (
        lambda d: (d / "model.weights.h5").write_bytes((d / "model.weights.h5").read_bytes()[:1000]),
        "model.weights.h5 is truncated or damaged",
        "export the model again",
    ),
    "bit-flipped weights": (
        lambda d: flip_a_bit(d / "model.weights.h5"),
        "its checksum does not match",
        "export the model again",
    ),
    "vocabulary smaller than config.json says": (drop_last_char, "does not hang together", "export the model again"),
    "vocabulary smaller than the weights": (drop_last_char_everywhere, "does not match the exported config", "export the model again"),
    "newer format version": (
        lambda d: edit_json(d / "config.json", lambda v: v.__setitem__("format_version", 99)),
        "has format version 99, newer than this tool's 1",
        "upgrade charbook",
    ),
    "config.json not JSON": (
        lambda d: (d / "config.json").write_text("{ this is not json"),
        "config.json is damaged",
        "export the model again",
    ),
    "vocab.json not text": (
        lambda d: (d / "vocab.json").write_bytes(random.Random(2).randbytes(300)),
        "vocabulary file is damaged",
        "export the model again",
    ),
    "format version not a number": (
        lambda d: edit_json(d / "config.json", lambda v: v.__setitem__("format_version", "one")),
        "config.json is damaged",
        "export the model again",
    ),
    "settings out of range": (
        lambda d: edit_json(d / "config.json", lambda v: v["config"].__setitem__("rnn_units", 0)),
        "config.json is damaged",
        "export the model again",
    ),
}


def damaged_copy(good_export, tmp_path, damage):
    copy = tmp_path / "export"
    shutil.copytree(good_export, copy)
    damage(copy)
    return copy


@pytest.mark.parametrize("case", DAMAGES)
def test_generate_from_a_damaged_export(good_export, tmp_path, case):
    damage, problem, fix = DAMAGES[case]
    result = run("generate.py", f"--export_dir={damaged_copy(good_export, tmp_path, damage)}", "--length=5")
    assert_clear_failure(result, problem, fix)


@pytest.mark.parametrize(
    "export_dir, flags, problem, fix",
    [
        ("GOOD", ["--seed_text=Quiz"], "never saw in training: 'Q', 'u', 'z'", "--allow_unknown"),
        ("GOOD", ["--stop_at=THE END"], "--stop_at='THE END' has characters the model never writes: 'T', 'H', 'E', 'N', 'D'", "give a --stop_at of characters it writes"),
        ("nowhere", [], "no export at", "train one with train.py --export_dir="),
    ],
)
def test_generate_bad_input(good_export, tmp_path, export_dir, flags, problem, fix):
    export_dir = good_export if export_dir == "GOOD" else tmp_path / export_dir
    assert_clear_failure(run("generate.py", f"--export_dir={export_dir}", "--length=5", *flags), problem, fix)


def test_allow_unknown_generates_with_a_warning(good_export):
    result = run("generate.py", f"--export_dir={good_export}", "--seed_text=Quiz", "--length=5", "--allow_unknown")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Quiz") and len(result.stdout) == len("Quiz") + 5 + 1
    assert "warning: the model never saw 'Q', 'u', 'z'" in result.stderr


@pytest.mark.parametrize(
    "damage, flags, problem, fix",
    [
        (None, ["--corpus=files", "--files=/nonexistent/held_out.txt"], "no files match --files pattern", "check the path"),
        (None, ["--corpus=files", "--files=SHORT"], "short.txt is shorter than one window of --seq_len + 1 = 11", "lower --seq_len"),
        (DAMAGES["bit-flipped weights"][0], ["--books=11"], "its checksum does not match", "export the model again"),
    ],
)
def test_evaluate_bad_input(good_export, gutenberg_mirror, tmp_path, damage, flags, problem, fix):
    (tmp_path / "short.txt").write_text("It was.\n")
    flags = [flag.replace("SHORT", str(tmp_path / "short.txt")) for flag in flags]
    export_dir = damaged_copy(good_export, tmp_path, damage) if damage else good_export
    result = run(
        "evaluate.py", f"--export_dir={export_dir}", f"--gutenberg_mirror={gutenberg_mirror}", f"--cache_dir={tmp_path}", *flags
    )
    assert_clear_failure(result, problem, fix)


# --- --debug shows what went wrong inside ---


@pytest.mark.parametrize("debug_flags, env", [(["--debug"], {}), ([], {"CHARBOOK_DEBUG": "1"})])
def test_debug_adds_the_traceback(tmp_path, debug_flags, env):
    result = run_train(tmp_path, "--corpus=files", f"--files={tmp_path / 'missing.txt'}", *debug_flags, env=env)
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().endswith("check the path (quote it so the shell leaves the * alone)")
    assert "error: no files match --files pattern" in result.stderr
