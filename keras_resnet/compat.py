"""Workarounds for Keras and TensorFlow, in one place.

Every use of a Keras/TensorFlow private name (``keras.src``, ``obj._attr``) or of
behaviour no public API offers goes through a function here, each with the reason,
the upstream bug where there is one, and the versions it was checked on, so it can
be deleted when upstream fixes it. Checked on Keras 3.15.1 and TensorFlow 2.21.0
(``keras.__version__`` / ``tf.__version__`` of this repository's environment).

Nothing here imports TensorFlow or Keras at module level: the command line imports
this module before TensorFlow (`import_tensorflow_quietly`).
"""

from __future__ import annotations

import functools
import os
import re
import sys
import tempfile
import types

# ---------------------------------------------------------------- TensorFlow start-up noise

# TensorFlow 2.21 logs through Abseil. Messages written while its shared libraries load
# come before ``absl::InitializeLog()`` and go to stderr whatever TF_CPP_MIN_LOG_LEVEL says
# (abseil/abseil-cpp#1718, #1957; tensorflow/tensorflow#102212), and on a machine without
# a CUDA driver the first device listing logs "failed call to cuInit" as an ERROR
# (tensorflow/tensorflow#37689). Hiding fd 2 entirely would also hide real errors (a
# broken CUDA install, a failing import), and CUDA_VISIBLE_DEVICES would hide real GPUs,
# so `import_tensorflow_quietly` captures stderr while TensorFlow loads and probes its
# devices, drops the lines below and writes everything else back.
_NOISE = tuple(
    re.compile(pattern)
    for pattern in (
        r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
        r"^[IW]\d{4} .*\] oneDNN custom operations are on\.",
        r"^[IW]\d{4} .*cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized",
        r"^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.$",
        r"^[IW]\d{4} .*cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, GPU will not be used\.",
        r"^[IWE]\d{4} .*Unable to register cu(DNN|FFT|BLAS) factory: Attempting to register factory for plugin",
        r"^[IW]\d{4} .*TF-TRT Warning: Could not find TensorRT",
    )
)
# Only noise where no CUDA driver exists (the cudart_stub line above says so): with a
# driver, a failing cuInit is a real error and stays visible.
_NO_DRIVER = re.compile(r"cudart_stub\.cc:\d+\] Could not find cuda drivers")
_CUINIT = re.compile(r"^E\d{4} .*cuda_platform\.cc:\d+\] failed call to cuInit: ")

#: Set to 1 to see TensorFlow's start-up messages unfiltered.
STARTUP_LOGS_ENV = "KRESNET_TF_STARTUP_LOGS"


def filter_startup_noise(text: str) -> str:
    """``text`` (captured stderr) without TensorFlow's known start-up notices; other lines kept in order."""
    lines = text.splitlines(keepends=True)
    no_driver = any(_NO_DRIVER.search(line) for line in lines)
    kept = [
        line
        for line in lines
        if not any(p.search(line.rstrip("\n")) for p in _NOISE)
        and not (no_driver and _CUINIT.search(line))
    ]
    return "".join(kept)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and Keras and list the devices, without TensorFlow's start-up notices.

    Call it where a command starts its real work (never at import time: ``kresnet --help``
    must not load TensorFlow). Lines that are not known notices, e.g. a CUDA driver error
    on a GPU machine, are written back to stderr; an import error is raised as usual.
    TF_CPP_MIN_LOG_LEVEL=2 (unless set) hides TensorFlow's later INFO and WARNING logs;
    its errors stay visible. On x86-64 Linux it also turns TensorFlow's oneDNN CPU kernels
    on unless ``TF_ENABLE_ONEDNN_OPTS`` is set (`keras_resnet.cpu_kernels.default_onednn_on`:
    TensorFlow leaves them off on CPUs without AVX512-VNNI or AMX, where they train about
    twice as fast). Imports nothing when TensorFlow is already imported, and filters
    nothing when ``KRESNET_TF_STARTUP_LOGS=1``.
    """
    from keras_resnet.cpu_kernels import default_onednn_on

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    default_onednn_on()
    if "tensorflow" in sys.modules or os.environ.get(STARTUP_LOGS_ENV):
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as captured:
        saved = os.dup(2)
        try:
            os.dup2(captured.fileno(), 2)
            try:
                import keras  # noqa: F401
                import tensorflow as tf

                # Listing devices loads the CUDA platform (the cuInit message) without
                # initialising the runtime: strategies and memory settings still apply later.
                tf.config.list_physical_devices()
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
        finally:
            os.close(saved)
            captured.seek(0)
            rest = filter_startup_noise(captured.read().decode("utf-8", errors="replace"))
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()


# ------------------------------------------------------------------------ Keras fit()


def set_fit_initial_epoch(model, epoch: int | None) -> None:
    """Make the next ``model.fit`` start at ``epoch`` (None: at its ``initial_epoch`` argument).

    Keras 3.15.1's trainers read ``model._initial_epoch`` right after the callbacks'
    ``on_train_begin`` (``initial_epoch = self._initial_epoch or initial_epoch``); it is
    how ``keras.callbacks.BackupAndRestore`` resumes and there is no public way.
    Keras never resets it, so a model fitted again (the next fine-tuning phase) would
    start at a stale epoch: set None when there is nothing to resume.
    """
    model._initial_epoch = epoch


# ---------------------------------------------------------- per-variable learning rates


def scale_learning_rate_per_variable(optimizer, multipliers: dict[str, float]):
    """Make ``optimizer`` update each variable with ``learning_rate * multipliers[variable.path]``.

    Keras 3 optimizers have one learning rate and no per-variable hook. This wraps
    ``update_step`` of this one instance (of the inner optimizer of a
    ``LossScaleOptimizer``); inside it the variable may be a backend variable (under
    tf.distribute), so its path is found through the optimizer's private
    ``_get_variable_index`` and ``_trainable_variables`` (checked on Keras 3.15.1).
    The class and config stay Keras' own, so saved models need no custom objects.

    Args:
        optimizer: A ``keras.optimizers.Optimizer``, before or after ``build``.
        multipliers: ``{variable.path: multiplier}``; other variables use 1.0.

    Returns:
        ``optimizer``.
    """
    target = getattr(optimizer, "inner_optimizer", None) or optimizer
    original = type(target).update_step

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        mult = multipliers.get(self._trainable_variables[index].path, 1.0)
        if mult != 1.0:
            learning_rate = learning_rate * mult
        return original(self, gradient, variable, learning_rate)

    target.update_step = types.MethodType(update_step, target)
    return optimizer


# ------------------------------------------------- stateless seeds for preprocessing layers


@functools.cache
def stateless_seed_generator_class():
    """A ``keras.random.SeedGenerator`` subclass whose i-th draw is ``stateless_fold_in(seed, i)``.

    Keras preprocessing layers accept a ``SeedGenerator`` as the ``seed`` of
    ``get_random_transformation`` and draw from it through ``keras.random``'s
    ``draw_seed``, which only calls ``next()`` on it (Keras 3.15.1). The subclass skips
    ``SeedGenerator.__init__`` so that no state variable is created: a layer's
    randomness is then a pure function of the seed tensor. Built on first use so that
    importing this module does not import Keras.
    """
    import keras
    import tensorflow as tf

    class StatelessSeedGenerator(keras.random.SeedGenerator):
        """Seeds ``stateless_fold_in(seed, 1)``, ``stateless_fold_in(seed, 2)``, ... from one seed tensor.

        Args:
            seed: int ``[2]`` seed tensor (e.g. the per-batch seed).
        """

        def __init__(self, seed):  # no super().__init__(): no state variable is wanted
            self._seed = tf.cast(seed, tf.int64)
            self._draws = 0

        def next(self, ordered=True):
            """The next seed, ``stateless_fold_in(seed, draw number)``; ``ordered`` is ignored."""
            self._draws += 1
            return tf.random.experimental.stateless_fold_in(self._seed, tf.constant(self._draws, tf.int64))

    return StatelessSeedGenerator


# ------------------------------------------------------- fused BatchNorm (TensorFlow backend)

_FUSED_DTYPES = ("float16", "bfloat16", "float32")


@functools.lru_cache(maxsize=None)
def fused_batch_norm_kernel_available(dtype: str) -> bool:
    """Whether TensorFlow runs ``FusedBatchNormV3`` (and its gradient) in ``dtype`` on this machine.

    Which dtypes have a kernel depends on the build and the device (bfloat16 on a CPU
    build without it is the case that matters), and a missing kernel only shows when
    a graph first runs. So this runs the forward, gradient and inference kernels once
    on a 1x1x2x1 tensor, eagerly (also when called while a ``tf.function`` traces),
    and remembers the answer per dtype.

    Args:
        dtype: A dtype name, e.g. ``"bfloat16"``.

    Returns:
        True when all three kernels ran; False for other dtypes or when one is missing.
    """
    import tensorflow as tf

    if dtype not in _FUSED_DTYPES:
        return False
    with tf.init_scope():
        try:
            x = tf.constant([[[[0.0], [1.0]]]], dtype=dtype)
            scale, offset = tf.ones([1]), tf.zeros([1])
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = tf.compat.v1.nn.fused_batch_norm(x, scale, offset, data_format="NHWC", is_training=True)[0]
            tape.gradient(y, x)
            tf.compat.v1.nn.fused_batch_norm(x, scale, offset, mean=tf.zeros([1]), variance=tf.ones([1]),
                                             data_format="NHWC", is_training=False)
        except tf.errors.OpError:
            return False
    return True


def fuse_batch_norm(model) -> int:
    """Run every 4-D, last-axis ``BatchNormalization`` of ``model`` through TensorFlow's fused kernel.

    Keras 3's BatchNormalization computes with separate ops on every backend
    (``ops.moments`` upcast to float32, then ``ops.batch_normalization``); tf.keras 2
    called ``tf.nn.fused_batch_norm`` (keras-team/keras-core#225 "BatchNorm is slow",
    closed without a fused path; checked on Keras 3.15.1, TensorFlow 2.21.0). On this
    repository's 2-core CPU the unfused layers take about two thirds of a ResNet-20
    training step (BENCHMARKS.md, "Fused BatchNorm"). This replaces ``call`` of each
    layer *instance* (the class and config stay Keras' own: saved models need no
    custom objects, and a reloaded model is plain Keras again) with the same
    arithmetic in one ``FusedBatchNormV3`` op: training normalises with the batch
    statistics and moves ``moving_mean``/``moving_variance`` by ``momentum`` as Keras
    does (with the biased batch variance, as Keras 3; the kernel returns the unbiased
    one, rescaled here); inference and frozen layers (``trainable=False``) use the
    moving statistics. Layers the kernel cannot take (a mask, ``renorm``,
    ``synchronized``, an axis other than the last, inputs that are not 4-D floats) run
    Keras' own ``call``, and so do inputs of a dtype this machine's TensorFlow has no
    fused kernel for (`fused_batch_norm_kernel_available`; TensorFlow 2.21 on x86 Linux
    has float32, float16 and bfloat16, with oneDNN on or off). On other Keras backends
    nothing changes.

    Call it on a built model, before compiling. Idempotent.

    Args:
        model: A built ``keras.Model``; nested models are included.

    Returns:
        How many layers now run fused (0 on other backends).
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return 0
    count = 0
    for layer in model._flatten_layers(include_self=False):
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        if not getattr(layer, "_kresnet_fused", False):
            layer.call = types.MethodType(_fused_batch_norm_call(type(layer).call), layer)
            layer._kresnet_fused = True
        count += 1
    return count


def _fused_batch_norm_call(keras_call):
    import tensorflow as tf

    def call(self, inputs, training=None, mask=None):
        rank = len(inputs.shape)
        if (mask is not None or rank != 4 or self.axis not in (-1, rank - 1) or self.renorm or self.synchronized
                or not fused_batch_norm_kernel_available(inputs.dtype.name)):
            return keras_call(self, inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        scale = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        offset = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        if training and self.trainable:
            outputs, mean, unbiased = tf.compat.v1.nn.fused_batch_norm(
                inputs, scale, offset, epsilon=self.epsilon, data_format="NHWC", is_training=True)
            count = tf.reduce_prod(tf.cast(tf.shape(inputs)[:-1], tf.float32))  # values per channel
            variance = unbiased * ((count - 1.0) / tf.maximum(count, 1.0))
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs, scale, offset, mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon, data_format="NHWC",
                is_training=False)
        return tf.cast(outputs, self.compute_dtype)

    return call


# ------------------------------------------------------------- Keras 3 weights files


def weights_file_keys(model) -> dict[str, str]:
    """The group of each layer of ``model`` in a Keras 3 ``.weights.h5`` file: ``{layer name: "layers/conv2d_3"}``.

    ``model.save_weights`` stores layers by class-and-order keys, not by name; they are
    made by ``keras.src.saving.saving_lib`` with the private
    ``keras.src.utils.naming.to_snake_case`` of the class name plus a counter
    (Keras 3.15.1). Reading such a file by layer name needs the same keys.
    """
    from keras.src.utils import naming

    used: dict[str, int] = {}
    keys = {}
    for layer in model.layers:
        base = naming.to_snake_case(layer.__class__.__name__)
        if base in used:
            used[base] += 1
            key = f"{base}_{used[base]}"
        else:
            used[base] = 0
            key = base
        keys[layer.name] = f"layers/{key}"
    return keys


def weights_h5_bytes(model) -> bytes:
    """The bytes ``model.save_weights("x.weights.h5")`` would write, built in memory.

    ``save_weights`` hands the path to h5py, which writes straight to disk: on a full
    disk HDF5 raises, then tears down a half-written file at exit and the process dies
    with a segmentation fault (h5py 3.14 / HDF5 1.14, exit 139 on a full tmpfs). Built
    in memory, the file reaches the disk through a plain Python write, whose failure
    is an ordinary ``OSError``. ``keras.src.saving.saving_lib.H5IOStore`` accepts an
    ``io.BytesIO`` but there is no public way to ask ``save_weights`` for one; this
    repeats ``saving_lib.save_weights_only`` (Keras 3.15.1) with that store. The file
    loads with ``model.load_weights`` like one written by ``save_weights``.
    """
    import io

    from keras.src.saving import saving_lib

    if not model.built:
        raise ValueError("The model is not built yet; build it (call it on data) before saving its weights.")
    buffer = io.BytesIO()
    store = saving_lib.H5IOStore(buffer, mode="w")
    try:
        saving_lib._save_state(model, weights_store=store, assets_store=None, inner_path="", visited_saveables=set())
    finally:
        store.close()
    return buffer.getvalue()


# ------------------------------------------------------- multi-worker fit (Keras + TF)


def install_keras_multi_worker_fixes() -> bool:
    """Let Keras 3's ``Model.fit``/``evaluate`` run under a multi-worker ``MultiWorkerMirroredStrategy``.

    Keras' TensorFlow trainer (``keras/src/backend/tensorflow/trainer.py``, Keras 3.15.1
    with TensorFlow 2.21; keras-team/keras#20585, tensorflow/tensorflow#72388) has two
    multi-worker-only bugs:

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
                      "keras_resnet.compat were not installed.", stacklevel=2)
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
