"""Distribution strategies and the process-level settings a run needs before TensorFlow works.

``strategy``: ``auto`` (MirroredStrategy when more than one GPU is visible, else the
default), ``default``, ``mirrored`` (all local GPUs, or all local CPUs/logical devices
when there is no GPU), ``multi_worker`` (``MultiWorkerMirroredStrategy`` from
``TF_CONFIG``) and ``tpu``. The batch size in the config is the *global* batch size.

**Keras 3 and MultiWorkerMirroredStrategy.** Keras 3's TensorFlow trainer cannot ``fit``
across several workers (keras-team/keras#20585): `make_strategy("multi_worker")` therefore
installs `keras_resnet.compat.install_keras_multi_worker_fixes`, which changes only the
two multi-worker branches at fault (the reasons and versions are written there).
"""

from __future__ import annotations

import json
import os

from keras_resnet.compat import install_keras_multi_worker_fixes
from keras_resnet.config import StrategyName, choices

__all__ = [
    "configure_process",
    "distribute_dataset_options",
    "install_keras_multi_worker_fixes",
    "is_chief",
    "make_strategy",
    "task_id",
]


def make_strategy(name: str):
    """Create the ``tf.distribute`` strategy called ``name``.

    Create it before any other TensorFlow work: ``multi_worker`` must be created
    at program start-up. ``multi_worker`` also calls `install_keras_multi_worker_fixes`.

    Args:
        name: One of `keras_resnet.config.StrategyName`: ``"auto"``, ``"default"``,
            ``"mirrored"``, ``"multi_worker"`` or ``"tpu"``.

    Returns:
        A ``tf.distribute.Strategy``.

    Raises:
        ValueError: for an unknown name, ``multi_worker`` without ``TF_CONFIG``, or ``tpu``
            where no TPU is found.
    """
    if name not in choices(StrategyName):
        raise ValueError(f"Unknown strategy. Expected one of {choices(StrategyName)}. Received: strategy={name!r}")
    import tensorflow as tf

    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError(
                "strategy 'multi_worker' reads the cluster from the TF_CONFIG environment variable, "
                'e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}. '
                "Received: TF_CONFIG unset"
            )
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        install_keras_multi_worker_fixes()
        return strategy
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        except ValueError as error:  # TF's own message ("Please provide a TPU Name to connect to.") names no cause
            raise ValueError(f"strategy 'tpu' found no TPU on this machine ({error}); use auto, default or mirrored "
                             "here. Received: strategy='tpu'") from None
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise NotImplementedError(f"strategy {name!r} is a StrategyName value that make_strategy does not handle yet")


def is_chief() -> bool:
    """True unless ``TF_CONFIG`` names this process a non-chief worker.

    The chief (worker 0 when the cluster has no ``chief`` task) writes the run
    directory; the other workers train alongside and write nothing shared.
    """
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = tf_config.get("task") or {}
    cluster = tf_config.get("cluster") or {}
    kind, index = task.get("type"), int(task.get("index", 0))
    if kind in (None, "chief"):
        return True
    if kind == "worker":
        return "chief" not in cluster and index == 0
    return False


def task_id() -> str:
    """This process' task as ``"<type>-<index>"`` (``"chief-0"`` without ``TF_CONFIG``)."""
    task = (json.loads(os.environ.get("TF_CONFIG") or "{}").get("task")) or {}
    return f"{task.get('type', 'chief')}-{task.get('index', 0)}"


def distribute_dataset_options(dataset, strategy_name: str):
    """Set the auto-shard policy a dataset needs under ``strategy_name``.

    Pipelines here read from memory or from many small files through a shuffled
    list, so multi-worker training shards by DATA (every worker sees a distinct
    slice of each global batch); single-host strategies need no sharding.

    Returns:
        The dataset with options applied (None stays None).
    """
    import tensorflow as tf

    if dataset is None or strategy_name != "multi_worker":
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def configure_process(seed: int, deterministic: bool, precision: str) -> None:
    """Seed everything, switch on op determinism and set the mixed-precision policy.

    Args:
        seed: For ``keras.utils.set_random_seed`` (Python, NumPy, TensorFlow).
        deterministic: ``tf.config.experimental.enable_op_determinism()``.
        precision: ``float32``, ``mixed_float16`` or ``mixed_bfloat16``.
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(precision)
