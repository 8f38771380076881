"""Distribution strategies and the process-level settings a run needs before TensorFlow works.

``strategy``: ``auto`` (MirroredStrategy when more than one GPU is visible, else the
default), ``default``, ``mirrored`` (all local GPUs, or all local CPUs/logical devices
when there is no GPU), ``multi_worker`` (``MultiWorkerMirroredStrategy`` from
``TF_CONFIG``) and ``tpu``. The batch size in the config is the *global* batch size.

**Keras 3 and MultiWorkerMirroredStrategy.** Keras 3's TensorFlow trainer (checked on
3.15.1; keras-team/keras#20585, tensorflow/tensorflow#72388) cannot ``fit`` across
several workers: its pre-build averages the first *nested* input batch with
``strategy.reduce``, which TensorFlow only accepts for a single value, and its step
averages every scalar loss/metric with ``strategy.reduce("MEAN", v, axis=0)``, which
has no axis 0. `make_strategy("multi_worker")` therefore installs
`install_keras_multi_worker_fixes`, which changes only those two multi-worker branches.
"""

from __future__ import annotations

import json
import os


def make_strategy(name: str):
    """Create the ``tf.distribute`` strategy called ``name``.

    Create it before any other TensorFlow work: ``multi_worker`` must be created
    at program start-up. ``multi_worker`` also calls `install_keras_multi_worker_fixes`.

    Args:
        name: ``"auto"``, ``"default"``, ``"mirrored"``, ``"multi_worker"`` or ``"tpu"``.

    Returns:
        A ``tf.distribute.Strategy``.

    Raises:
        ValueError: for an unknown name, or ``multi_worker`` without ``TF_CONFIG``.
    """
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
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(
        f"Unknown strategy. Expected auto, default, mirrored, multi_worker or tpu. Received: strategy={name!r}"
    )


def install_keras_multi_worker_fixes() -> bool:
    """Let Keras 3's ``Model.fit``/``evaluate`` run under a multi-worker ``MultiWorkerMirroredStrategy``.

    Keras' TensorFlow trainer (``keras/src/backend/tensorflow/trainer.py``) has two
    multi-worker-only bugs (keras-team/keras#20585):

    1. ``_maybe_symbolic_build`` averages the first input batch, a nested
       ``(images, labels)`` structure of ``PerReplica`` values, with
       ``strategy.reduce``; across workers TensorFlow converts that nest to one tensor
       and fails ("Attempt to convert a value (PerReplica ...) ... to a Tensor"). The
       batch is only used for its shapes and dtypes, so the fix takes this worker's first
       replica's slice instead (no cross-worker traffic).
    2. ``reduce_per_replica(..., reduction="auto")`` of the step's logs calls
       ``strategy.reduce("MEAN", v, axis=0)`` on scalar losses and metrics ("Invalid
       reduction dimension 0 for input with 0 dimensions"). The fix reduces with
       ``axis=None``: the element-wise mean over all replicas, which is what Keras'
       single-worker ``"mean"`` branch computes.

    Everything else (single-worker strategies, ``predict``'s ``"concat"``) goes to the
    original Keras code. Idempotent.

    Returns:
        True when the fixes are in place, False when this Keras lacks the patched
        internals (a warning says so; the two-worker test shows whether ``fit`` works).
    """
    import warnings

    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if getattr(tf_trainer, "_kresnet_multi_worker_fixes", False):
        return True
    trainer_class = tf_trainer.TensorFlowTrainer
    needed = [hasattr(trainer_class, "_maybe_symbolic_build"), hasattr(tf_trainer, "reduce_per_replica"),
              hasattr(tf_trainer, "_collective_all_reduce_multi_worker")]
    if not all(needed):
        warnings.warn("Keras' TensorFlow trainer has changed: the multi-worker fixes in "
                      "keras_resnet.train.strategy were not installed.", stacklevel=2)
        return False
    multi_worker = tf_trainer._collective_all_reduce_multi_worker
    original_build = trainer_class._maybe_symbolic_build
    original_reduce = tf_trainer.reduce_per_replica

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is None or strategy is None or not multi_worker(strategy):
            return original_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            data_batch = tf.nest.map_structure(
                lambda x: (strategy.experimental_local_results(x)[0]
                           if isinstance(x, tf.distribute.DistributedValues) else x),
                next(batches),
            )
            break
        return original_build(self, data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and multi_worker(strategy):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original_reduce(values, strategy, reduction)

    trainer_class._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer._kresnet_multi_worker_fixes = True
    return True


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
