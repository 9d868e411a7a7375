"""The LSTM recurrence as two compiled TensorFlow ops (models/lstm_kernel.cc), for CPUs with AVX-512 BF16.

fast_lstm runs its loops as these ops when it multiplies in bfloat16: each whole loop, forward or back, is one
kernel whose per-step products use the CPU's bfloat16 dot-product instructions on the recurrent kernel packed
once (bench/README.md has the speeds). The ops are built from their source with g++ the first time they are
needed, once per TensorFlow version, into <cache>/compiled/ ($CHARBOOK_CACHE_DIR, else ~/.cache/charbook),
and loaded from there afterwards. Where they cannot be built or loaded (no g++, no AVX-512 BF16, not Linux),
fast_lstm keeps its TensorFlow loops: the same arithmetic, slower, and `unavailable_reason()` says why.
"""

import fcntl
import functools
import hashlib
import os
import pathlib
import platform
import secrets
import shutil
import subprocess
import sys

import tensorflow as tf

import hardware
from pipeline import sources

SOURCE = pathlib.Path(__file__).with_name("lstm_kernel.cc")
COMPILER_FLAGS = ["-O3", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512bf16", "-mfma", "-shared", "-fPIC", "-w"]
_unavailable: list[str] = []  # why the ops could not be had, once load_ops has tried


@functools.cache
def load_ops():
    """The ops' module (charbook_lstm_forward, charbook_lstm_backward), or None where they cannot run here."""
    try:
        return tf.load_op_library(str(_built_library()))
    except _Unavailable as reason:
        _unavailable.append(str(reason))
    except (OSError, subprocess.SubprocessError, tf.errors.OpError) as error:
        _unavailable.append(f"the compiled LSTM could not be built or loaded ({str(error).strip().splitlines()[-1]})")
    return None


def unavailable_reason() -> str | None:
    """Why load_ops() returned None; None when it did not (or has not been called)."""
    return _unavailable[0] if _unavailable else None


def pack_pairs(kernel: tf.Tensor) -> tf.Tensor:
    """kernel [K, N] -> bfloat16 [K / 2, N, 2]: rows 2k and 2k + 1 side by side, the layout the ops multiply by."""
    k, n = kernel.shape
    return tf.transpose(tf.reshape(tf.cast(kernel, tf.bfloat16), [k // 2, 2, n]), [0, 2, 1])


def forward_loop(x_part, bias, h0, c0, recurrent_kernel, output_dtype):
    """fast_lstm._forward_loop's contract, as one op: the recurrent products in bfloat16."""
    outputs, h, c, cells, gates = load_ops().charbook_lstm_forward(x_part, bias, h0, c0, pack_pairs(recurrent_kernel))
    return tf.cast(outputs, output_dtype), h, c, cells, gates


def backward_loop(d_outputs, d_h, d_c, gates, cells, c0, recurrent_kernel_t):
    """fast_lstm._backward_loop's contract, as one op: d_gates in bfloat16, the rest float32."""
    d_outputs = tf.cast(d_outputs, tf.bfloat16)
    return load_ops().charbook_lstm_backward(d_outputs, d_h, d_c, gates, cells, c0, pack_pairs(recurrent_kernel_t))


class _Unavailable(Exception):
    pass


def _built_library() -> pathlib.Path:
    """The ops built for this TensorFlow and source: built now (under a lock, renamed into place whole) unless cached."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        raise _Unavailable(f"the compiled LSTM is built for Linux on x86-64 only, not {sys.platform} on {platform.machine()}")
    if "avx512_bf16" not in hardware.cpu_flags():
        raise _Unavailable("this CPU has no AVX-512 BF16 instructions, which the compiled LSTM needs")
    compiler = shutil.which("g++")
    if compiler is None:
        raise _Unavailable("no C++ compiler (g++) to build the compiled LSTM with")
    flags = [*COMPILER_FLAGS, *tf.sysconfig.get_compile_flags()]
    key = hashlib.sha256("\n".join([tf.__version__, tf.sysconfig.get_lib(), *flags, SOURCE.read_text()]).encode()).hexdigest()[:16]
    directory = pathlib.Path(os.environ.get("CHARBOOK_CACHE_DIR") or sources.default_cache_dir()) / "compiled"
    library = directory / f"lstm-{key}.so"
    if library.exists():
        return library
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process building the same library: wait, then use its
        if not library.exists():
            temporary = directory / f".lstm-{key}.{secrets.token_hex(4)}.so"
            try:
                command = [compiler, *flags, str(SOURCE), "-o", str(temporary), *tf.sysconfig.get_link_flags()]
                built = subprocess.run(command, capture_output=True, text=True, timeout=600)
                if built.returncode != 0:
                    raise _Unavailable(f"g++ could not build the compiled LSTM: {(built.stderr.strip() or '?').splitlines()[-1]}")
                os.replace(temporary, library)
            finally:
                temporary.unlink(missing_ok=True)
    return library
