"""The LSTM recurrence as two compiled TensorFlow ops (models/lstm_kernel.cc), for x86-64 CPUs with AVX2.

fast_lstm runs its loops as these ops on CPUs: each whole loop, forward or back, is one kernel. Its per-step
products run in float32 (AVX2 and FMA) or, on CPUs with AVX-512 BF16, in bfloat16 with the CPU's dot-product
instructions on the recurrent kernel packed once (bench/README.md has the speeds). The ops are built from their
source with g++ the first time they are needed, once per TensorFlow version, into <cache>/compiled/
($CHARBOOK_CACHE_DIR, else ~/.cache/charbook), and loaded from there afterwards; a cached copy that does not
load (damaged on disk) is built again, once. Where they cannot be built or loaded (no g++, no AVX2, not Linux on
x86-64), fast_lstm keeps its TensorFlow loops: the same arithmetic, slower, and `unavailable_reason()` says why.
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
SOURCES = [SOURCE, SOURCE.with_name("lstm_kernel_loops.h")]  # the .cc includes the .h: both make the library
# The library runs on any CPU with AVX2 and FMA; its AVX-512 BF16 code (#pragma GCC target) runs only where the CPU has it.
COMPILER_FLAGS = ["-O3", "-mavx2", "-mfma", "-shared", "-fPIC", "-w"]
_unavailable: list[str] = []  # why the ops could not be had, once load_ops has tried


def can_run(units: int, matmul_dtype: tf.DType) -> bool:
    """Whether the ops can run a layer of `units` whose products are in matmul_dtype here (why_not says why not)."""
    return why_not(units, matmul_dtype) is None


def why_not(units: int, matmul_dtype: tf.DType) -> str | None:
    """Why the ops cannot run such a layer here, None when they can: they load wherever they can be built (AVX2, g++),
    multiply in float32 wherever they load and in bfloat16 on AVX-512 BF16, and take multiples of 16 units."""
    if units % 16:
        return f"the compiled LSTM takes layers of a multiple of 16 units, not {units}"
    if matmul_dtype not in (tf.float32, tf.bfloat16):
        return f"the compiled LSTM multiplies in float32 or bfloat16, not {matmul_dtype.name}"
    if load_ops() is None:
        return unavailable_reason()
    if matmul_dtype == tf.bfloat16 and "avx512_bf16" not in hardware.cpu_flags():
        return "this CPU has no AVX-512 BF16 instructions for the compiled LSTM's bfloat16 products"
    return None


@functools.cache
def load_ops():
    """The ops' module (charbook_lstm_forward, charbook_lstm_backward), or None where they cannot run here."""
    try:
        library, built_now = _built_library()
        try:
            return tf.load_op_library(str(library))
        except tf.errors.OpError:
            if built_now:
                raise
            library, _ = _built_library(replacing=library.stat())  # a damaged cached copy: built again
            return tf.load_op_library(str(library))
    except _Unavailable as reason:
        _unavailable.append(str(reason))
    except (OSError, subprocess.SubprocessError, tf.errors.OpError) as error:
        _unavailable.append(f"the compiled LSTM could not be built or loaded ({str(error).strip().splitlines()[-1]})")
    return None


def unavailable_reason() -> str | None:
    """Why load_ops() returned None; None when it did not (or has not been called)."""
    return _unavailable[0] if _unavailable else None


def pack(kernel: tf.Tensor) -> tf.Tensor:
    """kernel [K, N] in the layout the ops multiply by, which also says their products' dtype:
    bfloat16 [K / 2, N, 2], rows 2k and 2k + 1 side by side (vdpbf16ps multiplies pairs);
    float32 [N / 16, K, 16], panels of 16 columns, each read in order (lstm_kernel.cc, Product)."""
    k, n = kernel.shape
    if kernel.dtype == tf.bfloat16:
        return tf.transpose(tf.reshape(kernel, [k // 2, 2, n]), [0, 2, 1])
    return tf.transpose(tf.reshape(tf.cast(kernel, tf.float32), [k, n // 16, 16]), [1, 0, 2])


def forward_loop(x_part, bias, h0, c0, recurrent_kernel, *, ids=None, inputs=None, input_kernel=None, output_dtype, groups=1):
    """fast_lstm's forward loop (fast_lstm._loops) as one op, its `groups` groups of rows side by side on the CPU's threads;
    the products in recurrent_kernel's dtype (as x_part's and the inputs').

    Given inputs [time, batch, features] (a multiple of 16) and input_kernel, each step multiplies its inputs and the
    last h in one product by [input_kernel; recurrent_kernel]: the input product made inside the loop, where its rows
    are in cache, instead of a product over the whole sequence before it. x_part (None then) is added if given.
    """
    dtype = recurrent_kernel.dtype
    if inputs is not None:
        recurrent_kernel = tf.concat([input_kernel, recurrent_kernel], axis=0)
    outputs, h, c, cells, gates = load_ops().charbook_lstm_forward(
        _or_empty(x_part, dtype), _or_empty(ids, tf.int32), _or_empty(inputs, dtype), bias, h0, c0, pack(recurrent_kernel), row_groups=groups
    )
    return tf.cast(outputs, output_dtype), h, c, cells, gates


def backward_loop(d_outputs, d_h, d_c, gates, cells, c0, recurrent_kernel_t, *, ids=None, table_rows=None, groups=1):
    """fast_lstm's backward loop as one op: d_gates in recurrent_kernel_t's dtype, the rest float32; given ids, the
    table's gradient summed per id as the loop goes (no pass over d_gates of its own), else None."""
    d_outputs = tf.cast(d_outputs, recurrent_kernel_t.dtype)
    d_gates, d_bias, d_h0, d_c0, d_table = load_ops().charbook_lstm_backward(
        d_outputs, d_h, d_c, gates, cells, c0, pack(recurrent_kernel_t), _or_empty(ids, tf.int32), row_groups=groups, table_rows=table_rows or 0
    )
    return d_gates, d_bias, d_h0, d_c0, d_table if ids is not None else None


def _or_empty(tensor, dtype):
    return tf.zeros([0], dtype) if tensor is None else tensor  # the ops take an input not given as an empty tensor


class _Unavailable(Exception):
    pass


def _built_library(*, replacing: os.stat_result | None = None) -> tuple[pathlib.Path, bool]:
    """The ops built for this TensorFlow and source, and whether they were built now (under a lock, renamed into place
    whole) rather than found in the cache. `replacing`: the cached copy, which did not load, to build again (unless
    another process has done so meanwhile)."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        raise _Unavailable(f"the compiled LSTM is built for Linux on x86-64 only, not {sys.platform} on {platform.machine()}")
    if not {"avx2", "fma"} <= hardware.cpu_flags():
        raise _Unavailable("this CPU has no AVX2 and FMA instructions, which the compiled LSTM needs")
    flags = [*COMPILER_FLAGS, *tf.sysconfig.get_compile_flags()]
    key = hashlib.sha256("\n".join([tf.__version__, tf.sysconfig.get_lib(), *flags, *(source.read_text() for source in SOURCES)]).encode()).hexdigest()[:16]
    directory = pathlib.Path(os.environ.get("CHARBOOK_CACHE_DIR") or sources.default_cache_dir()) / "compiled"
    library = directory / f"lstm-{key}.so"
    if library.exists() and replacing is None:
        return library, False
    compiler = shutil.which("g++")
    if compiler is None and replacing is not None:
        raise _Unavailable(f"the compiled LSTM in {library} does not load, and there is no C++ compiler (g++) to build it again")
    if compiler is None:
        raise _Unavailable("no C++ compiler (g++) to build the compiled LSTM with")
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process building the same library: wait, then use its
        for leftover in directory.glob(".lstm-*.so"):  # no build runs while this lock is held: these were killed midway
            leftover.unlink(missing_ok=True)
        if replacing is not None and _same_file(library, replacing):
            library.unlink()
        if library.exists():
            return library, False
        temporary = directory / f".lstm-{key}.{secrets.token_hex(4)}.so"
        try:
            command = [compiler, *flags, str(SOURCE), "-o", str(temporary), *tf.sysconfig.get_link_flags()]
            built = subprocess.run(command, capture_output=True, text=True, timeout=600)
            if built.returncode != 0:
                raise _Unavailable(f"g++ could not build the compiled LSTM: {(built.stderr.strip() or '?').splitlines()[-1]}")
            os.replace(temporary, library)
        finally:
            temporary.unlink(missing_ok=True)
    return library, True


def _same_file(path: pathlib.Path, seen: os.stat_result) -> bool:
    try:
        now = path.stat()
    except FileNotFoundError:
        return False
    return (now.st_ino, now.st_mtime_ns, now.st_size) == (seen.st_ino, seen.st_mtime_ns, seen.st_size)
