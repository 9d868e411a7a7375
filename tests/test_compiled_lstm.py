"""models/compiled_lstm: the LSTM's loops as compiled ops compute what fast_lstm's TensorFlow loops compute.

The references are fast_lstm's whole XLA loops, as small layers run them.
"""

import shutil

import numpy as np
import pytest
import tensorflow as tf

import hardware
from models import compiled_lstm, fast_lstm

CAN_BUILD = "avx512_bf16" in hardware.cpu_flags() and shutil.which("g++") is not None
needs_the_ops = pytest.mark.skipif(not CAN_BUILD, reason="the compiled LSTM needs AVX-512 BF16 and g++")


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


@needs_the_ops
@pytest.mark.parametrize("rows", [3, 16])  # fewer rows than a register block of 8, and two whole blocks
def test_the_forward_op_computes_the_tensorflow_loop(rows):
    x_part, bias, h0, c0, kernel = random_step_inputs(batch=rows)
    expected = fast_lstm._forward_loop_in_xla(x_part, bias, h0, c0, kernel, output_dtype=tf.float32)
    got = compiled_lstm.forward_loop(tf.cast(x_part, tf.bfloat16), bias, h0, c0, kernel, output_dtype=tf.float32)
    # Its products take h and the kernel rounded to bfloat16 (8 bits of mantissa): close, not equal.
    for name, value, reference in zip(["outputs", "h", "c", "cells", "gates"], got, expected):
        np.testing.assert_allclose(value, reference, atol=0.03, err_msg=name)


@needs_the_ops
def test_the_backward_op_computes_the_tensorflow_loop():
    x_part, bias, h0, c0, kernel = random_step_inputs()
    outputs, _, _, cells, gates = fast_lstm._forward_loop_in_xla(x_part, bias, h0, c0, kernel, output_dtype=tf.float32)
    d_outputs, d_h, d_c = (tf.random.stateless_normal(shape, seed=[1, k]) for k, shape in enumerate([outputs.shape, h0.shape, c0.shape]))
    expected = fast_lstm._backward_loop_in_xla(d_outputs, d_h, d_c, gates, cells, c0, tf.transpose(kernel))
    got = compiled_lstm.backward_loop(d_outputs, d_h, d_c, gates, cells, c0, tf.transpose(kernel))
    assert got[0].dtype == tf.bfloat16  # d_gates, ready for the weight gradients' bfloat16 products
    for name, value, reference in zip(["d_gates", "d_bias", "d_h0", "d_c0"], got, expected):
        value, reference = tf.cast(value, tf.float32), tf.cast(reference, tf.float32)
        assert float(tf.norm(value - reference)) < 0.02 * float(tf.norm(reference)), name


@needs_the_ops
def test_a_kernel_of_the_wrong_shape_is_refused():
    x_part, bias, h0, c0, kernel = random_step_inputs()
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"the packed kernel must be \[16, 128, 2\]"):
        compiled_lstm.load_ops().charbook_lstm_forward(x_part, bias, h0, c0, compiled_lstm.pack_pairs(kernel[:, :64]))


def test_without_a_compiler_the_tensorflow_loops_run_and_the_reason_is_kept(monkeypatch, tmp_path):
    monkeypatch.setenv("CHARBOOK_CACHE_DIR", str(tmp_path))  # nothing built there yet
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(compiled_lstm, "_unavailable", [])
    compiled_lstm.load_ops.cache_clear()
    try:
        assert compiled_lstm.load_ops() is None
        assert compiled_lstm.unavailable_reason() in (
            "no C++ compiler (g++) to build the compiled LSTM with",
            "this CPU has no AVX-512 BF16 instructions, which the compiled LSTM needs",
        )
        assert fast_lstm._loops(32, tf.bfloat16)[0] is not compiled_lstm.forward_loop
    finally:
        compiled_lstm.load_ops.cache_clear()


def test_pack_pairs_puts_rows_2k_and_2k_plus_1_side_by_side():
    kernel = tf.reshape(tf.range(12, dtype=tf.float32), [4, 3])  # rows [0 1 2] [3 4 5] [6 7 8] [9 10 11]
    packed = compiled_lstm.pack_pairs(kernel)
    assert packed.dtype == tf.bfloat16 and packed.shape == (2, 3, 2)
    assert tf.cast(packed, tf.int32).numpy().tolist() == [[[0, 3], [1, 4], [2, 5]], [[6, 9], [7, 10], [8, 11]]]
