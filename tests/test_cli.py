"""cli.run: what reaches the user when something fails inside an entry script."""

import os
import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT

# A stand-in entry script whose main raises the error its argument names, as deep inside train.py, or writes as it says.
SCRIPT = """
import errno
import os
import cli
cli.import_tensorflow_quietly()
import tensorflow as tf

ERRORS = {
    "full_disk": OSError(errno.ENOSPC, "No space left on device", "/data/cache/pg84.txt"),
    "memory": MemoryError(),
    "oom": tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[128,100,65536]\\nmore detail"),
}

def write_lines():
    for _ in range(100_000):
        print("y" * 100, flush=True)

def write_one_line():
    print("the only line")  # still buffered when main returns

def write_into_a_closed_pipe():  # a pipe the tool opened itself, not its stdout
    read_end, write_end = os.pipe()
    os.close(read_end)
    os.write(write_end, b"lost")

ACTIONS = {"lines": write_lines, "one_line": write_one_line, "closed_pipe": write_into_a_closed_pipe}

def main(argv):
    if argv[1] in ACTIONS:
        return ACTIONS[argv[1]]()
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
        ("closed_pipe", "error: Broken pipe; the program or connection reading it has stopped\n"),
    ],
)
def test_failures_end_in_one_line_and_exit_status_2(error, message):
    result = subprocess.run([sys.executable, "-c", SCRIPT, error], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("bytes_read", [100, 0])
def test_a_reader_of_stdout_that_stops_ends_the_tool_quietly(bytes_read):
    """tool | head: exit status 0 and nothing on stderr, whether the reader goes mid-stream or before the last flush."""
    action = "lines" if bytes_read else "one_line"
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout buffered, as users have it
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, action], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=PROJECT_ROOT, env=environment
    )
    assert len(process.stdout.read(bytes_read)) == bytes_read
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 0
    assert stderr == b""
