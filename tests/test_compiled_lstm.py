"""models/compiled_lstm: the LSTM's loops as compiled ops compute what fast_lstm's TensorFlow loops compute.

The references are fast_lstm's whole XLA loops, as small layers run them.
"""

import pathlib
import platform
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import hardware
from models import compiled_lstm, fast_lstm

CAN_BUILD = {"avx2", "fma"} <= hardware.cpu_flags() and shutil.which("g++") is not None
HAS_BF16 = "avx512_bf16" in hardware.cpu_flags()
needs_the_ops = pytest.mark.skipif(not CAN_BUILD, reason="the compiled LSTM needs AVX2, FMA and g++")
needs_bf16 = pytest.mark.skipif(not (CAN_BUILD and HAS_BF16), reason="the compiled LSTM's bfloat16 products need AVX-512 BF16")


def random_step_inputs(time=5, batch=3, units=32, seed=0):
    rng = np.random.default_rng(seed)

    def normal(*shape, scale=1.0):
        return tf.constant((rng.normal(size=shape) * scale).astype(np.float32))

    x_part, bias = normal(time, batch, 4 * units), normal(4 * units, scale=0.1)
    h0, c0, kernel = normal(batch, units, scale=0.5), normal(batch, units), normal(units, 4 * units, scale=units**-0.5)
    return x_part, bias, h0, c0, kernel


@needs_the_ops
def test_the_ops_build_and_load_where_the_cpu_and_a_compiler_allow():
    assert compiled_lstm.load_ops() is not None, compiled_lstm.unavailable_reason()


# float32 products compute the XLA loops' results to rounding; bfloat16 ones take h and the kernel rounded to
# 8 bits of mantissa: close, not equal.
PRODUCTS = [pytest.param(tf.float32, 1e-5, id="float32"), pytest.param(tf.bfloat16, 0.03, id="bfloat16", marks=needs_bf16)]
XLA_FORWARD = fast_lstm._forward_in_row_groups(fast_lstm._forward_loop_in_xla)
XLA_BACKWARD = fast_lstm._backward_in_row_groups(fast_lstm._backward_loop_in_xla)


@needs_the_ops
@pytest.mark.parametrize("dtype, tolerance", PRODUCTS)
# Fewer rows than a register block (6 or 8), more than two blocks, and either in groups (equal or not) side by side.
@pytest.mark.parametrize("rows, groups", [(3, 1), (16, 1), (16, 2), (7, 3)])
def test_the_forward_op_computes_the_tensorflow_loop(dtype, tolerance, rows, groups):
    x_part, bias, h0, c0, kernel = random_step_inputs(batch=rows)
    expected = XLA_FORWARD(x_part, bias, h0, c0, kernel, ids=None, output_dtype=tf.float32, groups=1)
    x_part, kernel = tf.cast(x_part, dtype), tf.cast(kernel, dtype)
    got = compiled_lstm.forward_loop(x_part, bias, h0, c0, kernel, output_dtype=tf.float32, groups=groups)
    for name, value, reference in zip(["outputs", "h", "c", "cells", "gates"], got, expected):
        np.testing.assert_allclose(value, reference, atol=tolerance, err_msg=name)


def backward_inputs(x_part, bias, h0, c0, kernel, ids=None):
    outputs, _, _, cells, gates = XLA_FORWARD(x_part, bias, h0, c0, kernel, ids=ids, output_dtype=tf.float32, groups=1)
    d_outputs, d_h, d_c = (tf.random.stateless_normal(shape, seed=[1, k]) for k, shape in enumerate([outputs.shape, h0.shape, c0.shape]))
    return d_outputs, d_h, d_c, gates, cells, c0


@needs_the_ops
@pytest.mark.parametrize("dtype, tolerance", PRODUCTS)
@pytest.mark.parametrize("groups", [1, 2])
def test_the_backward_op_computes_the_tensorflow_loop(dtype, tolerance, groups):
    x_part, bias, h0, c0, kernel = random_step_inputs(batch=6)
    inputs = backward_inputs(x_part, bias, h0, c0, kernel)
    expected = XLA_BACKWARD(*inputs, tf.transpose(kernel), ids=None, table_rows=None, groups=1)
    got = compiled_lstm.backward_loop(*inputs, tf.transpose(tf.cast(kernel, dtype)), groups=groups)
    assert got[0].dtype == dtype  # d_gates, ready for the weight gradients' products in the same dtype
    assert got[4] is None  # no ids, no table
    for name, value, reference in zip(["d_gates", "d_bias", "d_h0", "d_c0"], got, expected):
        value, reference = tf.cast(value, tf.float32), tf.cast(reference, tf.float32)
        assert float(tf.norm(value - reference)) < tolerance * float(tf.norm(reference)), name


@needs_the_ops
def test_given_ids_the_ops_read_rows_of_a_table_and_sum_its_gradient_per_id():
    # The first LSTM's input product, looked up per character in embeddings @ kernel (fast_lstm.lookup_table).
    _, bias, h0, c0, kernel = random_step_inputs(batch=6)
    table = tf.random.stateless_normal([10, kernel.shape[1]], seed=[2, 0])
    ids = tf.random.stateless_uniform([5, 6], seed=[2, 1], maxval=10, dtype=tf.int32)
    expected = XLA_FORWARD(tf.gather(table, ids), bias, h0, c0, kernel, ids=None, output_dtype=tf.float32, groups=1)
    got = compiled_lstm.forward_loop(table, bias, h0, c0, kernel, ids=ids, output_dtype=tf.float32, groups=2)
    for name, value, reference in zip(["outputs", "h", "c", "cells", "gates"], got, expected):
        np.testing.assert_allclose(value, reference, atol=1e-5, err_msg=name)
    inputs = backward_inputs(table, bias, h0, c0, kernel, ids)
    d_gates, *_, d_table = compiled_lstm.backward_loop(*inputs, tf.transpose(kernel), ids=ids, table_rows=10, groups=2)
    np.testing.assert_allclose(d_table, tf.math.unsorted_segment_sum(d_gates, ids, 10), atol=1e-5)
    np.testing.assert_allclose(d_table, XLA_BACKWARD(*inputs, tf.transpose(kernel), ids=ids, table_rows=10, groups=1)[4], atol=1e-5)


@needs_the_ops
@pytest.mark.parametrize("dtype, tolerance", PRODUCTS)
def test_given_inputs_the_forward_op_multiplies_them_with_h_in_each_step(dtype, tolerance):
    # The layers after the first: their input product made inside the loop, each step's inputs and h times
    # [input_kernel; recurrent_kernel] in one product (and an x_part, if given, added).
    x_part, bias, h0, c0, kernel = random_step_inputs(batch=7)
    inputs = tf.random.stateless_normal([5, 7, 48], seed=[3, 0])
    input_kernel = tf.random.stateless_normal([48, kernel.shape[1]], seed=[3, 1]) * 0.2
    product = fast_lstm.input_product(inputs, input_kernel)
    as_dtype = [tf.cast(t, dtype) for t in (x_part, kernel, inputs, input_kernel)]
    x_part_d, kernel_d, inputs_d, input_kernel_d = as_dtype
    for added, added_d in [(tf.zeros_like(product), None), (x_part, x_part_d)]:
        expected = XLA_FORWARD(product + added, bias, h0, c0, kernel, ids=None, output_dtype=tf.float32, groups=1)
        got = compiled_lstm.forward_loop(
            added_d, bias, h0, c0, kernel_d, inputs=inputs_d, input_kernel=input_kernel_d, output_dtype=tf.float32, groups=2
        )
        for name, value, reference in zip(["outputs", "h", "c", "cells", "gates"], got, expected):
            np.testing.assert_allclose(value, reference, atol=tolerance, err_msg=name)


@needs_the_ops
def test_inputs_that_do_not_match_the_state_are_refused():
    x_part, bias, h0, c0, kernel = random_step_inputs(batch=3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="shapes that do not agree"):
        compiled_lstm.forward_loop(x_part[:, :2], bias, h0, c0, kernel, output_dtype=tf.float32)


@needs_the_ops
def test_an_id_outside_the_table_is_refused():
    _, bias, h0, c0, kernel = random_step_inputs(batch=3)
    table, ids = tf.zeros([10, kernel.shape[1]]), tf.constant([[1, 10, 2]] * 5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="id 10 is not a row of the table of 10 rows"):
        compiled_lstm.forward_loop(table, bias, h0, c0, kernel, ids=ids, output_dtype=tf.float32)


@needs_the_ops
@pytest.mark.parametrize(
    "dtype, message",
    [(tf.float32, r"the packed kernel must be \[8, 32, 16\], not \[4,32,16\]"), (tf.bfloat16, r"the packed kernel must be \[16, 128, 2\]")],
)
def test_a_kernel_of_the_wrong_shape_is_refused(dtype, message):
    if dtype == tf.bfloat16 and not HAS_BF16:
        pytest.skip("bfloat16 kernels need AVX-512 BF16")
    x_part, bias, h0, c0, kernel = random_step_inputs()
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        compiled_lstm.forward_loop(tf.cast(x_part, dtype), bias, h0, c0, tf.cast(kernel[:, :64], dtype), output_dtype=tf.float32)


@needs_the_ops
@pytest.mark.skipif(HAS_BF16, reason="this CPU has AVX-512 BF16")
def test_bfloat16_products_are_refused_on_a_cpu_without_avx512_bf16():
    assert not compiled_lstm.can_run(16, tf.bfloat16) and compiled_lstm.can_run(16, tf.float32)
    x_part, bias, h0, c0, kernel = random_step_inputs()
    with pytest.raises(tf.errors.FailedPreconditionError, match="a bfloat16 kernel needs a CPU with AVX-512 BF16"):
        compiled_lstm.forward_loop(tf.cast(x_part, tf.bfloat16), bias, h0, c0, tf.cast(kernel, tf.bfloat16), output_dtype=tf.float32)


def test_without_a_compiler_the_tensorflow_loops_run_and_the_reason_is_kept(monkeypatch, tmp_path):
    monkeypatch.setenv("CHARBOOK_CACHE_DIR", str(tmp_path))  # nothing built there yet
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(compiled_lstm, "_unavailable", [])
    compiled_lstm.load_ops.cache_clear()
    try:
        assert compiled_lstm.load_ops() is None
        assert compiled_lstm.unavailable_reason() in (
            "no C++ compiler (g++) to build the compiled LSTM with",
            "this CPU has no AVX2 and FMA instructions, which the compiled LSTM needs",
        )
        for dtype in (tf.float32, tf.bfloat16):
            assert fast_lstm._loops(32, dtype)[0] is not compiled_lstm.forward_loop
    finally:
        compiled_lstm.load_ops.cache_clear()


@needs_the_ops
def test_a_library_built_once_loads_without_the_compiler(monkeypatch):
    assert compiled_lstm.load_ops() is not None  # built, or found in the cache
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(compiled_lstm, "_unavailable", [])
    compiled_lstm.load_ops.cache_clear()
    try:
        assert compiled_lstm.load_ops() is not None, compiled_lstm.unavailable_reason()
    finally:
        compiled_lstm.load_ops.cache_clear()


@pytest.mark.skipif(sys.platform != "linux" or platform.machine() != "x86_64", reason="built for Linux on x86-64 only")
def test_a_cached_library_that_does_not_load_is_built_again_and_killed_builds_leave_nothing(monkeypatch, tmp_path):
    # The compiler and the loader faked: "g++" writes b"built" to its -o file; a file of other bytes does not load.
    monkeypatch.setenv("CHARBOOK_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(compiled_lstm.hardware, "cpu_flags", lambda: {"avx2", "fma"})
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/g++")
    builds = []

    def run(command, **kwargs):
        builds.append(command)
        pathlib.Path(command[command.index("-o") + 1]).write_bytes(b"built")
        return subprocess.CompletedProcess(command, 0, "", "")

    def load_op_library(path):
        if pathlib.Path(path).read_bytes() != b"built":
            raise tf.errors.NotFoundError(None, None, f"{path}: invalid ELF header")
        return "the ops"

    monkeypatch.setattr(compiled_lstm.subprocess, "run", run)
    monkeypatch.setattr(compiled_lstm.tf, "load_op_library", load_op_library)
    monkeypatch.setattr(compiled_lstm, "_unavailable", [])
    library, built_now = compiled_lstm._built_library()
    assert built_now and len(builds) == 1
    library.write_bytes(b"\x7fELF cut short by a full disk")
    leftover = library.with_name(".lstm-0123456789abcdef.deadbeef.so")  # a build killed midway
    leftover.write_bytes(b"half")
    compiled_lstm.load_ops.cache_clear()
    try:
        assert compiled_lstm.load_ops() == "the ops"
    finally:
        compiled_lstm.load_ops.cache_clear()
    assert len(builds) == 2 and library.read_bytes() == b"built"
    assert sorted(path.name for path in library.parent.iterdir()) == [".lock", library.name]


def test_pack_puts_bfloat16_rows_2k_and_2k_plus_1_side_by_side():
    kernel = tf.reshape(tf.range(12, dtype=tf.bfloat16), [4, 3])  # rows [0 1 2] [3 4 5] [6 7 8] [9 10 11]
    packed = compiled_lstm.pack(kernel)
    assert packed.dtype == tf.bfloat16 and packed.shape == (2, 3, 2)
    assert tf.cast(packed, tf.int32).numpy().tolist() == [[[0, 3], [1, 4], [2, 5]], [[6, 9], [7, 10], [8, 11]]]


def test_pack_cuts_float32_into_panels_of_16_columns():
    kernel = tf.reshape(tf.range(2 * 32, dtype=tf.float32), [2, 32])  # row 0: 0..31, row 1: 32..63
    packed = compiled_lstm.pack(kernel)
    assert packed.dtype == tf.float32 and packed.shape == (2, 2, 16)
    assert packed.numpy().tolist() == [[list(range(0, 16)), list(range(32, 48))], [list(range(16, 32)), list(range(48, 64))]]


def test_why_not_names_the_layers_the_ops_do_not_take():
    assert compiled_lstm.why_not(100, tf.float32) == "the compiled LSTM takes layers of a multiple of 16 units, not 100"
    assert compiled_lstm.why_not(32, tf.float16) == "the compiled LSTM multiplies in float32 or bfloat16, not float16"
    assert not compiled_lstm.can_run(100, tf.float32)
