"""The LSTM that trains on CPUs: keras.layers.LSTM's weights and arithmetic, computed in fewer, larger operations.

Keras' own LSTM runs a CPU as a loop of small kernels per character, forward and back, each with
its own matrix products of [batch, units] size. This one takes Keras' variables as they are (kernel,
recurrent_kernel, bias; gates i, f, c, o) and:

- multiplies the whole sequence's inputs by `kernel` in one product before the recurrence, and
  computes the gradients of `kernel`, `recurrent_kernel` and `bias` after it, as products over all
  characters at once, so the loops hold only the one product per character that must wait for the last;
- in the first LSTM, looks that input product up per id in embeddings @ kernel (Sequential hands it the ids),
  as generation does, instead of multiplying every character's embedding;
- in layers of more than 256 units, runs that product with TensorFlow's own kernel (oneDNN) and the rest
  of a step, the gates' element-wise arithmetic, as one XLA-compiled kernel, forward and back (Keras' loop
  runs a dozen small kernels per step); in smaller layers, each whole loop is one XLA kernel (_loops says why);
- runs the rows of a batch as one independent loop per CPU core (row_groups): small products side by side
  beat each product spread over all cores;
- adds the bias, converts between bfloat16 and float32 and sums the bias' gradient inside the loops' steps,
  where XLA fuses them into work the step does anyway, rather than in passes over whole sequences of their own;
- multiplies in bfloat16 under a mixed_bfloat16 policy (charbook picks it on CPUs with native bfloat16,
  distribute.use_precision) while the cell state, the gates and the gradients stay float32
  (XLA-compiled loops multiply in float32 either way);
- on x86-64 CPUs with AVX2 (nearly all made since 2013), runs each whole loop as one compiled op instead
  (models/compiled_lstm), where g++ can build it: in float32, and in bfloat16 on CPUs with AVX-512 BF16. The fastest of all.
  There the input product of the layers after the first is made inside the loop too, each step's inputs and h
  multiplied in one product by [kernel; recurrent_kernel] while they are in cache, and the first's lookup per id.

The measured gains are in bench/README.md (bench/train.py). GPUs and TPUs keep keras.layers.LSTM
(cuDNN's fused kernel, XLA on TPUs); see models/char_lstm.build_model.
"""

import os

import keras
import tensorflow as tf

from models import compiled_lstm


class LSTM(keras.layers.LSTM):
    """keras.layers.LSTM with a faster training loop on CPUs; its weights load into keras.layers.LSTM and back.

    Named LSTM on purpose: Keras' weight files key a layer by its class name, so this layer's weights
    are stored under the same names as keras.layers.LSTM's. Masks, go_backwards and input dropout
    (none of which charbook uses) take Keras' own loop.

    Called with `ids` and `embeddings` (by Sequential below, when this is the first LSTM), `sequences` must
    be embeddings[ids]: the input product is then looked up per id instead of multiplied (lookup_table).
    """

    _lookup = None  # the ids and embedding table of the call being traced, for inner_loop

    def call(self, sequences, initial_state=None, mask=None, training=False, ids=None, embeddings=None):
        # inner_loop, where the input product is made, is called by keras.layers.RNN.call, which passes no ids on.
        self._lookup = _Lookup(ids, embeddings) if ids is not None else None
        try:
            return super().call(sequences, initial_state=initial_state, mask=mask, training=training)
        finally:
            self._lookup = None

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if mask is not None or self.go_backwards or (training and self.dropout) or not _default_cell(self.cell):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        matmul_dtype = products_dtype(self.compute_dtype)
        kernel, recurrent_kernel, bias = (tf.convert_to_tensor(w) for w in (self.cell.kernel, self.cell.recurrent_kernel, self.cell.bias))
        if self._lookup:  # the first LSTM: its input product looked up per id in a table
            x, source = lookup_table(self._lookup.embeddings, kernel), dict(ids=time_major(self._lookup.ids))
        else:  # the layer's inputs, time-major (a step's rows side by side), to multiply by the kernel
            x, source = tf.transpose(sequences, [1, 0, 2]), dict(kernel=kernel)
        outputs, h, c = run_recurrence(
            x, *initial_state, recurrent_kernel, bias, **source, matmul_dtype=matmul_dtype,
            groups=row_groups(sequences.shape[0], cpu_cores()), output_dtype=sequences.dtype,
        )
        outputs = tf.transpose(outputs, [1, 0, 2])  # [batch, time, units]
        return outputs[:, -1], outputs, [tf.cast(h, sequences.dtype), tf.cast(c, sequences.dtype)]


class Sequential(keras.Sequential):
    """keras.Sequential that also hands its first fast LSTM (after the Embedding) the ids and the embedding table.

    Saves and restores exactly as keras.Sequential (weight files and checkpoints hold the same names), so
    its weights load into a model of Keras' own layers and back.
    """

    def call(self, inputs, training=None, mask=None):
        embedding, first, *others = self.layers
        if not (isinstance(embedding, keras.layers.Embedding) and isinstance(first, LSTM)):
            return super().call(inputs, training=training, mask=mask)
        x = first(embedding(inputs), ids=inputs, embeddings=embedding.embeddings, training=training)
        for layer in others:
            x = layer(x, training=training)
        return x


class _Lookup:  # a plain class, not a tuple: Keras tracks tuples set on a layer
    def __init__(self, ids, embeddings):
        self.ids, self.embeddings = ids, embeddings


def products_dtype(compute_dtype: str) -> tf.DType:
    """The dtype the layer multiplies in under a dtype policy computing in compute_dtype: bfloat16 under
    mixed_bfloat16, float32 otherwise (the cell state and the gates are float32 either way)."""
    return tf.bfloat16 if compute_dtype == "bfloat16" else tf.float32


MIN_ROWS_PER_GROUP = 16  # fewer rows make the per-step products too small to run at speed


def row_groups(batch_size: int | None, cores: int) -> int:
    """How many independent groups of rows to run the recurrence in: one per core, each of at least MIN_ROWS_PER_GROUP rows.

    The rows of a batch never meet inside an LSTM, so each group runs as a loop of its own, side by side, one per
    core (the compiled op on the CPU's threads, TensorFlow's loops as independent ops). At charbook's sizes a
    step's products are small, and two of them side by side, one per core, measured nearly twice as fast as each
    spread over both cores (bench/README.md). A batch size unknown while tracing, or one the groups would not divide evenly, gets one group.
    """
    if batch_size is None:
        return 1
    fitting = [n for n in range(1, cores + 1) if batch_size % n == 0 and batch_size // n >= MIN_ROWS_PER_GROUP]
    return max(fitting, default=1)


def cpu_cores() -> int:
    """The CPU cores this process may run on (a container or taskset may allow fewer than the machine has)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def input_product(x, kernel):
    """The input part of every step's gates in one product: x [time, batch, input] @ kernel -> [time, batch, 4 * units],
    bias not added (the loops add it step by step, where it costs no pass over memory of its own)."""
    time, batch, features = tf.shape(x)[0], tf.shape(x)[1], x.shape[-1]
    return tf.reshape(tf.matmul(tf.reshape(x, [-1, features]), kernel), [time, batch, kernel.shape[-1]])


def lookup_table(embeddings, kernel):
    """The first LSTM's input product of every id, embeddings @ kernel [vocab, 4 * units] in float32: looked up per
    character (run_recurrence's ids), as generation does (char_lstm.StepWeights).

    The products over every character, forward and back (the gradients of the input and of the kernel), become
    products of the vocabulary's size: at the default size, 14% of a training step's arithmetic.
    """
    return tf.matmul(tf.cast(embeddings, tf.float32), tf.cast(kernel, tf.float32))


def time_major(ids):
    """ids [batch, time] -> [time, batch], read in that order rather than transposed: transposing int32 (even cast to
    int64 first, which TensorFlow reorders) makes oneDNN print an error line ("supports DT_INT32 only on platforms with AVX-512")."""
    batch, time = tf.shape(ids)[0], tf.shape(ids)[1]
    return tf.gather(tf.reshape(ids, [-1]), tf.range(time)[:, None] + time * tf.range(batch)[None, :])


@tf.function(jit_compile=True)  # XLA's sum measured twice as fast as TensorFlow's kernel (bench/README.md)
def _sum_rows_per_id(rows, ids, vocab_size):
    return tf.math.unsorted_segment_sum(tf.cast(rows, tf.float32), ids, vocab_size)


def run_recurrence(x, h0, c0, recurrent_kernel, bias, *, kernel=None, ids=None, matmul_dtype=None, groups=1, output_dtype=tf.float32):
    """Keras' LSTM over a time-major sequence, with its gradient: h0 and c0 [batch, units] -> (outputs [time, batch,
    units] in output_dtype, last h, last c in float32). The rows run in `groups` groups side by side (row_groups).

    x is the layer's inputs [time, batch, features] to multiply by `kernel`: in the loop itself where the loop can
    (the compiled op), else in one product before it. Or, given ids [time, batch], the table [vocab, 4 * units] of
    input products they pick rows of (lookup_table); or, given neither, the input product itself, bias not added.
    The products take matmul_dtype (float32 or bfloat16; x's dtype if not given); the cell state and gates are float32.
    """
    units = recurrent_kernel.shape[0]
    matmul_dtype = matmul_dtype or x.dtype
    table_rows = x.shape[0] if ids is not None else None

    @tf.custom_gradient
    def run(x, h0, c0, recurrent_kernel, bias, *kernel):
        forward_loop, backward_loop, loop_dtype = _loops(units, matmul_dtype)
        # What the loops take. Gradients come from `grad` below: stop_gradient keeps an eager tape from differentiating them too.
        x_in = tf.stop_gradient(tf.cast(x, matmul_dtype))
        state = [tf.stop_gradient(tf.cast(s, tf.float32)) for s in (h0, c0)]
        loop_kernel, loop_bias = tf.stop_gradient(tf.cast(recurrent_kernel, loop_dtype)), tf.stop_gradient(tf.cast(bias, tf.float32))
        input_kernel = tf.stop_gradient(tf.cast(kernel[0], matmul_dtype)) if kernel else None
        if input_kernel is None:
            x_part, step_inputs = x_in, {"ids": ids}
        elif forward_loop is compiled_lstm.forward_loop and x.shape[-1] % 16 == 0:  # multiplied in the loop, with h
            x_part, step_inputs = None, {"inputs": x_in, "input_kernel": input_kernel}
        else:
            x_part, step_inputs = input_product(x_in, input_kernel), {"ids": None}
        outputs, h, c, cells, gates = forward_loop(x_part, loop_bias, *state, loop_kernel, **step_inputs, output_dtype=output_dtype, groups=groups)

        def grad(d_outputs, d_h, d_c):
            # The loop sums the bias' gradient (and the table's) as it goes, and hands d_gates back in its products' dtype:
            # ready for the products below when that is matmul_dtype (an XLA loop's bfloat16 conversions measured slow).
            d_state = (tf.cast(d_h, tf.float32), tf.cast(d_c, tf.float32))
            d_gates, d_bias, d_h0, d_c0, d_table = backward_loop(
                d_outputs, *d_state, gates, cells, state[1], tf.transpose(loop_kernel), ids=ids, table_rows=table_rows, groups=groups
            )
            d_gates = tf.reshape(tf.cast(d_gates, matmul_dtype), [-1, 4 * units])  # [time * batch, 4 * units]
            # The kernels' gradients as products over all steps, e.g. [units, time * batch] @ [time * batch, 4 * units].
            previous_h = tf.reshape(tf.concat([tf.cast(state[0][None], outputs.dtype), outputs[:-1]], axis=0), [-1, units])
            d_recurrent = tf.matmul(tf.cast(previous_h, matmul_dtype), d_gates, transpose_a=True)
            if ids is not None:
                d_x = d_table
            elif input_kernel is None:
                d_x = tf.reshape(d_gates, tf.shape(x))
            else:
                d_x = tf.reshape(tf.matmul(d_gates, input_kernel, transpose_b=True), tf.shape(x))
            d_kernel = [tf.matmul(tf.reshape(x_in, [-1, x.shape[-1]]), d_gates, transpose_a=True)] if kernel else []
            gradients = [d_x, d_h0, d_c0, d_recurrent, d_bias, *d_kernel]
            return [tf.cast(d, like.dtype) for d, like in zip(gradients, [x, h0, c0, recurrent_kernel, bias, *kernel])]

        return (outputs, h, c), grad

    return run(x, h0, c0, recurrent_kernel, bias, *([] if kernel is None else [kernel]))


XLA_LOOPS_UP_TO_UNITS = 256


def _loops(units: int, matmul_dtype: tf.DType):
    """The forward and backward loops for a layer of `units`, and the dtype their recurrent kernel is handed in.

    The compiled ops wherever they can run (models/compiled_lstm.can_run): in bfloat16 1.4x-1.5x the speed of the
    loops below at the demo's size, 1.15x at the default size; in float32 (AVX2, a Zen 3) 1.28x at the demo's size
    (bench/README.md). Otherwise:
    Up to XLA_LOOPS_UP_TO_UNITS, each whole loop is one XLA-compiled kernel, with its products in float32:
    a step is so short there that TensorFlow's per-operation costs dominate, and at the demo's size
    (192 units) whole XLA loops measured 10-25% faster than oneDNN's products between XLA-compiled gate
    steps, in either precision (XLA's CPU products gain nothing from bfloat16). At 512 units they measured
    20-30% slower in bfloat16, where oneDNN's products run at twice XLA's speed (bench/README.md).
    """
    if compiled_lstm.can_run(units, matmul_dtype):
        return compiled_lstm.forward_loop, compiled_lstm.backward_loop, matmul_dtype
    if units <= XLA_LOOPS_UP_TO_UNITS:
        return _forward_in_row_groups(_forward_loop_in_xla), _backward_in_row_groups(_backward_loop_in_xla), tf.float32
    return _forward_in_row_groups(_forward_loop), _backward_in_row_groups(_backward_loop), matmul_dtype


def _forward_in_row_groups(loop):
    """One of the TensorFlow forward loops below as the compiled op's contract (compiled_lstm.forward_loop): the ids'
    rows of the table looked up, then one loop per group of rows, which TensorFlow runs side by side."""

    def forward(x_part, bias, h0, c0, recurrent_kernel, *, ids, output_dtype, groups):
        if ids is not None:
            x_part = tf.gather(x_part, ids)
        rows = zip(tf.split(x_part, groups, axis=1), tf.split(h0, groups), tf.split(c0, groups))
        runs = [loop(x, bias, h, c, recurrent_kernel, output_dtype=output_dtype) for x, h, c in rows]
        return tuple(tf.concat([run[k] for run in runs], axis=0 if k in (1, 2) else 1) for k in range(5))

    return forward


def _backward_in_row_groups(loop):
    """One of the TensorFlow backward loops below as compiled_lstm.backward_loop's contract: one loop per group of rows,
    then, given ids, the gradient of the table summed per id."""

    def backward(d_outputs, d_h, d_c, gates, cells, c0, recurrent_kernel_t, *, ids, table_rows, groups):
        per_step = (tf.split(t, groups, axis=1) for t in (d_outputs, gates, cells))
        per_row = (tf.split(t, groups) for t in (d_h, d_c, c0))
        runs = [loop(d_o, d_h, d_c, g, c, c0, recurrent_kernel_t) for (d_o, g, c), (d_h, d_c, c0) in zip(zip(*per_step), zip(*per_row))]
        d_gates = tf.concat([run[0] for run in runs], axis=1)
        d_table = _sum_rows_per_id(d_gates, ids, table_rows) if ids is not None else None
        d_h0, d_c0 = (tf.concat([run[k] for run in runs], axis=0) for k in (2, 3))
        return d_gates, tf.add_n([run[1] for run in runs]), d_h0, d_c0, d_table

    return backward


def _forward_loop(x_part, bias, h0, c0, recurrent_kernel, output_dtype):
    """x_part [time, batch, 4 * units] (the input product, bias not added) -> outputs h [time, batch, units] in
    output_dtype, the last h and c [batch, units] in float32, cells c [time, batch, units] and activated gates
    [time, batch, 4 * units] in float32."""
    time = tf.shape(x_part)[0]

    def body(t, h, c, outputs, cells, gates):
        # The one product that must wait for the previous step, then the rest of the step as one XLA-compiled kernel,
        # which also hands back h in the dtypes the next product and the outputs want (no cast kernels in the loop).
        # Outside XLA (large layers, _loops) the product is TensorFlow's own kernel: oneDNN, bfloat16 in hardware
        # where the CPU has it.
        h, output, c, g = _cell(x_part[t], bias, tf.matmul(h, recurrent_kernel), c, output_dtype=output_dtype)
        return t + 1, h, c, outputs.write(t, output), cells.write(t, c), gates.write(t, g)

    arrays = [tf.TensorArray(dtype, size=time) for dtype in (output_dtype, tf.float32, tf.float32)]
    h0 = tf.cast(h0, recurrent_kernel.dtype)
    _, h, c, outputs, cells, gates = tf.while_loop(lambda t, *_: t < time, body, (0, h0, c0, *arrays))
    return outputs.stack(), tf.cast(h, tf.float32), c, cells.stack(), gates.stack()


def _backward_loop(d_outputs, d_h, d_c, gates, cells, c0, recurrent_kernel_t):
    """From the last step back: the gradients of the gates before activation [time, batch, 4 * units] in
    recurrent_kernel_t's dtype, of the bias [4 * units], of h0 and of c0 (float32)."""
    time = tf.shape(gates)[0]
    previous_cells = tf.concat([c0[None], cells[:-1]], axis=0)

    def body(k, d_h, d_c, d_bias, d_gates):
        t = time - 1 - k
        step = (gates[t], cells[t], previous_cells[t], d_outputs[t])
        d_z, d_c, d_bias = _cell_gradient(*step, d_h, d_c, d_bias, product_dtype=recurrent_kernel_t.dtype)
        return k + 1, tf.matmul(d_z, recurrent_kernel_t), d_c, d_bias, d_gates.write(t, d_z)

    d_gates = tf.TensorArray(recurrent_kernel_t.dtype, size=time)
    d_h = tf.cast(d_h, recurrent_kernel_t.dtype)  # from here on the loop carries it as the product returns it
    d_bias = tf.zeros([gates.shape[-1]], tf.float32)
    _, d_h, d_c, d_bias, d_gates = tf.while_loop(lambda k, *_: k < time, body, (0, d_h, d_c, d_bias, d_gates))
    return d_gates.stack(), d_bias, tf.cast(d_h, tf.float32), d_c


@tf.function(jit_compile=True)
def _cell(x_part_t, bias, recurrent_part, c, output_dtype):
    """One step of Keras' LSTM cell from its two products, in float32: -> h (in the recurrent product's dtype, for
    the next one), h in output_dtype, c [batch, units], activated gates i, f, c, o."""
    z = tf.cast(x_part_t, tf.float32) + bias + tf.cast(recurrent_part, tf.float32)
    i, f, g, o = tf.split(z, 4, axis=-1)
    i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
    c = f * c + i * g
    h = o * tf.tanh(c)
    return tf.cast(h, recurrent_part.dtype), tf.cast(h, output_dtype), c, tf.concat([i, f, g, o], axis=-1)


@tf.function(jit_compile=True)
def _cell_gradient(gates_t, c_t, c_previous, d_output, d_h, d_c, d_bias, product_dtype):
    """d(loss)/d(pre-activation) of one step's gates i, f, c, o [batch, 4 * units] in product_dtype, the previous
    step's d_c, and d_bias plus this step's.

    sigmoid' = s (1 - s), tanh' = 1 - tanh^2; d_h and d_c arrive from the step after, d_output from the layer's output.
    """
    d_h = tf.cast(d_output, tf.float32) + tf.cast(d_h, tf.float32)
    i, f, g, o = tf.split(gates_t, 4, axis=-1)
    tanh_c = tf.tanh(c_t)
    d_c = d_c + d_h * o * (1 - tanh_c * tanh_c)
    d_z = tf.concat(
        [d_c * g * i * (1 - i), d_c * c_previous * f * (1 - f), d_c * i * (1 - g * g), d_h * tanh_c * o * (1 - o)], axis=-1
    )
    return tf.cast(d_z, product_dtype), d_c * f, d_bias + tf.reduce_sum(d_z, axis=0)


_forward_loop_in_xla = tf.function(_forward_loop, jit_compile=True)
_backward_loop_in_xla = tf.function(_backward_loop, jit_compile=True)


def _default_cell(cell: keras.layers.LSTMCell) -> bool:
    """The arithmetic the loops above implement: Keras' default activations, a bias, no recurrent dropout."""
    return (
        cell.activation is keras.activations.tanh
        and cell.recurrent_activation is keras.activations.sigmoid
        and cell.use_bias
        and not cell.recurrent_dropout
    )
