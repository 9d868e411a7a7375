"""Which devices train the model: a tf.distribute strategy for --strategy, and the matching mixed precision."""

import glob
import json
import os

import keras
import tensorflow as tf

from errors import UserError


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy --strategy names; 'auto' picks a TPU if one is attached, else all GPUs, else the CPU.

    --batch_size is the global batch: a strategy splits each batch across its replicas.
    """
    if name == "auto":
        if tpu_is_attached():
            return make_strategy("tpu")
        if len(tf.config.list_logical_devices("GPU")) > 1:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.get_strategy()  # one GPU or the CPU: no replicas to keep in sync
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
        return _connect_to_tpu()
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


def set_precision(mixed: bool, strategy: tf.distribute.Strategy) -> str:
    """Sets Keras' global dtype policy for the models built next and returns its name.

    float16 on GPUs, bfloat16 on TPUs (whose matrix units are made for it, with no loss scaling
    needed); the weights stay float32 either way, so exports do not depend on this setting.
    """
    if not mixed:
        policy = "float32"
    elif isinstance(strategy, tf.distribute.TPUStrategy):
        policy = "mixed_bfloat16"
    else:
        policy = "mixed_float16"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def describe(strategy: tf.distribute.Strategy) -> str:
    """'MirroredStrategy over 2 replicas' and the like, for the start-up summary."""
    if not tf.distribute.has_strategy() and strategy is tf.distribute.get_strategy():
        return "one GPU" if tf.config.list_logical_devices("GPU") else "the CPU"
    name = type(strategy).__name__
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        name = "MultiWorkerMirroredStrategy"  # rather than its implementation class, CollectiveAllReduceStrategy
    return f"{name} over {strategy.num_replicas_in_sync} replica(s)"


def tpu_is_attached() -> bool:
    """True on a runtime with a TPU: Colab's and Cloud TPU runtimes announce theirs; a TPU VM has its chips as devices."""
    announced = any(name in os.environ for name in ("COLAB_TPU_ADDR", "TPU_NAME", "TPU_ACCELERATOR_TYPE"))
    return announced or bool(glob.glob("/dev/accel*"))


def _connect_to_tpu() -> tf.distribute.TPUStrategy:
    # A TPU reached over the network (older Colab runtimes, Cloud TPU nodes) is found through the
    # environment; on a TPU VM (current Colab TPU runtimes) the TPU is local to this machine.
    errors = []
    for tpu in (None, "local"):
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
            if tpu is None:
                tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            return tf.distribute.TPUStrategy(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as error:
            errors.append(str(error).splitlines()[0] if str(error) else type(error).__name__)
    raise UserError(
        f"--strategy=tpu found no TPU to use ({'; '.join(errors)}); on Colab pick a TPU runtime, or use --strategy=auto"
    )


def _has_chief() -> bool:
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return "chief" in cluster
