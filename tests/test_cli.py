"""cli.run: what reaches the user when something fails inside an entry script."""

import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT

# A stand-in entry script whose main raises the error its argument names, as deep inside train.py.
SCRIPT = """
import errno
import cli
import tensorflow as tf

ERRORS = {
    "full_disk": OSError(errno.ENOSPC, "No space left on device", "/data/cache/pg84.txt"),
    "memory": MemoryError(),
    "oom": tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[128,100,65536]\\nmore detail"),
}

def main(argv):
    raise ERRORS[argv[1]]

cli.define_config_flags("run")
cli.run(main)
"""


@pytest.mark.parametrize(
    "error, message",
    [
        ("full_disk", "error: No space left on device: /data/cache/pg84.txt; free some disk space, then rerun\n"),
        ("memory", "error: out of memory (no detail); lower --batch_size, --seq_len, --rnn_units or --embedding_dim (for generate.py, --num_samples)\n"),
        ("oom", "error: out of memory (OOM when allocating tensor with shape[128,100,65536]); lower --batch_size"),
    ],
)
def test_failures_end_in_one_line_and_exit_status_2(error, message):
    result = subprocess.run([sys.executable, "-c", SCRIPT, error], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1
