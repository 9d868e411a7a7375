"""Which devices train the model: a tf.distribute strategy for --strategy, the --precision it computes in, and which LSTM."""

import contextlib
import json
import os
import sys
from collections.abc import Iterator

import keras
import tensorflow as tf

from errors import UserError

# TPU chips are found from /dev and /sys in hardware.py, which does without TensorFlow; tpu_is_attached
# is re-exported for the callers that ask distribute.
from hardware import LIBTPU_INDEX, TPU_TENSORFLOW, cpu_has_native_bfloat16, find_tpu_devices, tpu_is_attached  # noqa: F401

INSTALL_TPU_TENSORFLOW = (
    f"install TensorFlow with TPU support (pip install {TPU_TENSORFLOW} "
    f"-f {LIBTPU_INDEX}; see BUILD.md)"
)


def make_strategy(name: str, *, root: str | os.PathLike = "/") -> tf.distribute.Strategy:
    """The strategy --strategy names; 'auto' picks a TPU if one is attached, else all GPUs, else the CPU.

    --batch_size is the global batch: a strategy splits each batch across its replicas. Only a TPU of
    this machine (a TPU VM) is used, never one reached over the network (a TPU node), which cannot
    read the local files charbook trains from. `root` is where to look for TPU devices (tests).
    """
    if name == "auto":
        tpu_devices, tpu_problem = find_tpu_devices(root), None
        if tpu_devices:
            try:
                return _connect_to_tpu()
            except _TPU_ERRORS as error:
                tpu_problem = (
                    f"this machine has a TPU ({_describe_devices(tpu_devices)}) but TensorFlow cannot use it "
                    f"({_why_tensorflow_cannot(error)}); to use it, {INSTALL_TPU_TENSORFLOW}"
                )
        elif _tpu_node_announced():
            tpu_problem = _tpu_node_not_supported()
        if len(tf.config.list_logical_devices("GPU")) > 1:
            strategy = tf.distribute.MirroredStrategy()
        else:
            strategy = tf.distribute.get_strategy()  # one GPU or the CPU: no replicas to keep in sync
        if tpu_problem:  # training goes on, but not silently many times slower than the user expects
            print(
                f"warning: {tpu_problem}. Training on {describe(strategy)} instead "
                "(--strategy=default does so without this warning)",
                file=sys.stderr,
            )
        return strategy
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # All GPUs; without any, every logical CPU device (one, unless the CPU was split for testing).
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise UserError(
                "--strategy=multiworker needs $TF_CONFIG listing every worker and this one's index; see BUILD.md"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        return _make_tpu_strategy(root)
    raise UserError(f"unknown --strategy={name!r}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the one worker that writes exports, checkpoints and logs (always, outside multi-worker training)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = strategy.cluster_resolver.task_type, strategy.cluster_resolver.task_id
    # Without an explicit chief, worker 0 plays that part.
    return task_type is None or task_type == "chief" or (task_type == "worker" and task_id == 0 and not _has_chief())


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """Machines (processes) that each run an input pipeline: more than one only in multi-worker training."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    cluster = strategy.cluster_resolver.cluster_spec()
    return sum(cluster.num_tasks(job) for job in cluster.jobs if job in ("chief", "worker"))


def auto_steps_per_call(strategy: tf.distribute.Strategy, *, log_every: int) -> int:
    """Training steps per compiled call for --steps_per_call=0: on a TPU all the steps between two progress lines,
    as a TPU idles while the host dispatches each step; elsewhere one, so that Ctrl-C stops within a step."""
    return log_every if isinstance(strategy, tf.distribute.TPUStrategy) else 1


def values_of_workers(strategy: tf.distribute.Strategy, value: int) -> list[int]:
    """`value` as each worker holds it, in worker order: [value] alone outside multi-worker training.

    A collective operation: every worker must call it, and each gets the same list.
    """
    workers = num_workers(strategy)
    if workers == 1:
        return [value]

    @tf.function
    def gather(value):
        return strategy.run(lambda: tf.distribute.get_replica_context().all_gather(value[None], axis=0))

    per_replica = strategy.experimental_local_results(gather(tf.constant(value, tf.int64)))[0].numpy().tolist()
    return per_replica[:: len(per_replica) // workers]  # each worker's replicas hold its value


# --precision -> Keras' dtype policy. The weights stay float32 under every policy, so exports do not depend on it.
PRECISION_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


@contextlib.contextmanager
def use_precision(precision: str, strategy: tf.distribute.Strategy) -> Iterator[str]:
    """Keras' global dtype policy for --precision (precision_policy) while the block builds models; yields its name.

    Keras reads the global policy when a layer is built, so the models built inside keep it; on leaving,
    the policy from before is back, and models built later (a notebook's, a test's) are not silently mixed precision.
    """
    before = keras.mixed_precision.global_policy()
    policy = precision_policy(precision, strategy)
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield policy
    finally:
        keras.mixed_precision.set_global_policy(before)


def precision_policy(precision: str, strategy: tf.distribute.Strategy, *, cpu_bfloat16: bool | None = None) -> str:
    """The name of Keras' dtype policy for --precision on the hardware `strategy` trains on.

    'auto' picks what the hardware computes fastest with float32 weights, state, logits and loss: bfloat16 on
    TPUs (whose matrix units are made for it, no loss scaling needed) and on CPUs that multiply bfloat16
    natively (`cpu_bfloat16`, read from /proc/cpuinfo unless given), float16 on GPUs, else float32.
    """
    if precision == "auto":
        if isinstance(strategy, tf.distribute.TPUStrategy):
            precision = "bfloat16"
        elif tf.config.list_logical_devices("GPU"):
            precision = "float16"
        else:
            precision = "bfloat16" if (cpu_has_native_bfloat16() if cpu_bfloat16 is None else cpu_bfloat16) else "float32"
    return PRECISION_POLICIES[precision]


def trains_on_cpu(strategy: tf.distribute.Strategy) -> bool:
    """True when `strategy` trains on CPU cores, where models/fast_lstm.LSTM beats keras.layers.LSTM.

    Not on a TPU (XLA compiles Keras' LSTM there) and not when TensorFlow sees a GPU: every strategy
    then trains on it, where Keras' LSTM runs cuDNN's fused kernel.
    """
    return not isinstance(strategy, tf.distribute.TPUStrategy) and not tf.config.list_logical_devices("GPU")


def describe(strategy: tf.distribute.Strategy) -> str:
    """'MirroredStrategy over 2 replicas' and the like, for the start-up summary."""
    if not tf.distribute.has_strategy() and strategy is tf.distribute.get_strategy():
        return "one GPU" if tf.config.list_logical_devices("GPU") else "the CPU"
    name = type(strategy).__name__
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        name = "MultiWorkerMirroredStrategy"  # rather than its implementation class, CollectiveAllReduceStrategy
    return f"{name} over {strategy.num_replicas_in_sync} replica(s)"


# What TPUClusterResolver, initialize_tpu_system and TPUStrategy raise when there is no TPU they can use.
_TPU_ERRORS = (ValueError, RuntimeError, tf.errors.OpError)


def _connect_to_tpu() -> tf.distribute.TPUStrategy:
    # tpu="local": the TPU of this machine (a TPU VM). A TPU node, reached over the network, would run
    # the input pipeline on its own host, which cannot read this machine's files.
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _make_tpu_strategy(root: str | os.PathLike) -> tf.distribute.TPUStrategy:
    tpu_devices = find_tpu_devices(root)
    try:
        # Tried even when no TPU device was found: TensorFlow knows chips newer than the list above.
        return _connect_to_tpu()
    except _TPU_ERRORS as error:
        reason = _why_tensorflow_cannot(error)
    if tpu_devices:
        raise UserError(
            f"--strategy=tpu: this machine has a TPU ({_describe_devices(tpu_devices)}) but TensorFlow cannot use it "
            f"({reason}); {INSTALL_TPU_TENSORFLOW}, or train without it with --strategy=default"
        )
    if _tpu_node_announced():
        raise UserError(f"--strategy=tpu: {_tpu_node_not_supported()}")
    raise UserError(
        "--strategy=tpu found no TPU to use (this machine has no /dev/accel* and no TPU behind /dev/vfio); on Colab pick "
        "a TPU runtime (Runtime > Change runtime type), or use --strategy=auto"
    )


def _why_tensorflow_cannot(error: Exception) -> str:
    text = str(error)
    if "No OpKernel was registered" in text:  # TensorFlow has no TPU operations: a build without TPU support
        return f"tensorflow {tf.__version__} is installed, without TPU support"
    return text.splitlines()[0] if text else type(error).__name__


def _describe_devices(devices: list[str]) -> str:
    return devices[0] + (f" and {len(devices) - 1} more" if len(devices) > 1 else "")


def _tpu_node_announced() -> str | None:
    """The variable naming a TPU reached over the network: Colab's retired TPU nodes, or a Cloud TPU node's name."""
    if "COLAB_TPU_ADDR" in os.environ:
        return "COLAB_TPU_ADDR"
    if os.environ.get("TPU_NAME", "local") != "local":
        return "TPU_NAME"
    return None


def _tpu_node_not_supported() -> str:
    variable = _tpu_node_announced()
    return (
        f"${variable}={os.environ[variable]} names a TPU reached over the network (a TPU node), which charbook does not "
        f"support: its host cannot read the files charbook trains from; use a TPU VM (every current Colab TPU runtime is one)"
    )


def _has_chief() -> bool:
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return "chief" in cluster
