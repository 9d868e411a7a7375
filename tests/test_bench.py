"""bench/ scripts from the command line, at their --quick sizes, on the CPU."""

import json
import os
import subprocess
import sys

import step_plan
from conftest import CORPORA_DIR, PROJECT_ROOT

ACCELERATOR_CHECK_SPEEDS = (
    "train_float32_chars_per_sec",
    "train_mixed_precision_chars_per_sec",
    "generate_batch1_chars_per_sec",
    "generate_batch64_chars_per_sec",
    "seconds",
)


def run_bench(script: str, *args: str, **environment) -> dict:
    """Runs bench/<script> --quick, which must succeed and print one line: its JSON report."""
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / script), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **environment},
    )
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    return json.loads(line)


def test_accelerator_check_prints_one_json_line_of_positive_speeds():
    report = run_bench("accelerator_check.py", CUDA_VISIBLE_DEVICES="")  # the CPU, even on a machine with a GPU

    assert report["errors"] == {}
    for key in ACCELERATOR_CHECK_SPEEDS:
        assert report[key] > 0, key
    assert report["devices"]["CPU"] >= 1 and report["gpus"] == [] and report["tpu_cores"] == 0
    assert report["strategy"] == "the CPU" and report["replicas"] == 1
    assert report["mixed_precision_policy"] == "mixed_bfloat16"  # a CPU has no fast float16
    assert report["cudnn_lstm"] is None and "no GPU" in report["cudnn_lstm_reason"]
    assert report["model"] == "embedding 8, 2x16 LSTM, 100 ids" and report["train_batch"] == "8 x 10"
    assert {"tensorflow", "keras", "python", "platform", "tpu_attached", "tensorflow_cuda_build"} <= report.keys()


def fake_pytorch_python(folder, *, has_torch: bool = True) -> str:
    """An executable standing in for a Python with torch: it answers bench/pytorch_train.py's command with 1,000 chars/s
    each, except the demo size in bfloat16, which it cannot train (as on a CPU without bfloat16 instructions)."""
    script = folder / "python-with-torch"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"if sys.argv[1] == '-c': sys.exit({0 if has_torch else 1})\n"
        "sizes = json.loads(next(arg for arg in sys.argv if arg.startswith('--sizes='))[len('--sizes='):])\n"
        "report = {f'{size}_pytorch_{precision}_chars_per_sec': 1000.0 for size in sizes for precision in ('float32', 'bfloat16')}\n"
        "del report['demo_pytorch_bfloat16_chars_per_sec']\n"
        "report['demo_pytorch_bfloat16_unavailable'] = 'no bfloat16 LSTM here'\n"
        "print(json.dumps(report))\n"
    )
    script.chmod(0o755)
    return str(script)


def test_train_bench_prints_the_speeds_of_both_layers_in_both_precisions_and_their_ratios(tmp_path):
    report = run_bench("train.py", f"--pytorch_python={fake_pytorch_python(tmp_path)}")
    for size in ("default", "demo"):
        for name in ("stock_float32", "stock_bfloat16", "ours_float32", "ours_bfloat16"):
            assert report[f"{size}_{name}_chars_per_sec"] > 0
        for precision in ("float32", "bfloat16"):
            speedup = report[f"{size}_ours_{precision}_speedup"]
            assert speedup == round(report[f"{size}_ours_{precision}_chars_per_sec"] / report[f"{size}_stock_float32_chars_per_sec"], 2)
        assert report[f"{size}_pytorch_float32_chars_per_sec"] == 1000.0
        best_ours = max(report[f"{size}_ours_float32_chars_per_sec"], report[f"{size}_ours_bfloat16_chars_per_sec"])
        assert report[f"{size}_ours_vs_pytorch"] == round(best_ours / 1000.0, 2)  # each at its best precision
    assert report["default_pytorch_bfloat16_chars_per_sec"] == 1000.0
    # Where PyTorch cannot train in bfloat16, the report says why instead of a figure, and compares float32.
    assert "demo_pytorch_bfloat16_chars_per_sec" not in report
    assert report["demo_pytorch_bfloat16_unavailable"] == "no bfloat16 LSTM here"
    assert isinstance(report["cpu_bf16"], bool)


def test_train_bench_says_when_the_pytorch_python_has_no_torch(tmp_path):
    command = [sys.executable, str(PROJECT_ROOT / "bench" / "train.py"), "--quick", f"--pytorch_python={fake_pytorch_python(tmp_path, has_torch=False)}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and result.stdout == ""
    assert "cannot import torch" in result.stderr.splitlines()[-1]


def test_catalog_bench_prints_one_json_line_with_the_figures_the_issue_asks_for():
    report = run_bench("catalog.py")
    for key in ("csv_parse_seconds", "rdf_parse_seconds", "query_seconds", "rdf_parse_peak_rss_mb"):
        assert report[key] > 0, key
    assert report["catalog_rows"] == 3000 and report["rdf_files"] == report["download_counts"] == 2000  # the stray test/ entry skipped


def test_quality_bench_trains_for_its_budget_and_prints_bits_per_char_and_a_sample(tmp_path):
    tiny = ["--embedding_dim=4", "--rnn_units=8", "--batch_size=4", "--seq_len=8", "--precision=float32"]
    budget = ["--seconds=1", "--corpora=tinyshakespeare", f"--cache_dir={tmp_path}"]
    command = [sys.executable, str(PROJECT_ROOT / "bench" / "quality.py"), *budget, *tiny]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ, "CHARBOOK_CORPORA": str(CORPORA_DIR)})
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    report = json.loads(line)
    # The budget is --train_minutes': the plan comes after the compiling step and TIMED_STEPS timed ones.
    assert report["tinyshakespeare_steps"] >= step_plan.TIMED_STEPS + 1 and report["tinyshakespeare_train_seconds"] > 0
    assert 0 < report["tinyshakespeare_validation_bits_per_char"] < 8
    assert report["tinyshakespeare_sample"].startswith("It was ") and len(report["tinyshakespeare_sample"]) == len("It was ") + 300
