"""``training.precision: auto``: the compute precision that is fastest where a run starts.

The rule, from measurements (BENCHMARKS.md, "Training throughput"):

* a TPU: ``mixed_bfloat16`` (its native format);
* GPUs: ``mixed_bfloat16`` when every visible GPU has compute capability 8.0 or more
  (Ampere and later run bfloat16 at float16 speed without loss scaling),
  ``mixed_float16`` before that (tensor cores, with loss scaling);
* a CPU with AMX-BF16 (Intel Sapphire Rapids and later): ``mixed_bfloat16``; on the
  2-core development machine ResNet-20 trained 1.1-1.7x faster than in float32;
* any other CPU: ``float32`` (without AMX, oneDNN's bfloat16 kernels were not
  measured faster, and older CPUs emulate bfloat16 slowly);
* also ``float32`` on an AMX CPU when TensorFlow's oneDNN kernels are switched off
  (``TF_ENABLE_ONEDNN_OPTS=0``): TensorFlow's own bfloat16 kernels do not use AMX, and
  ResNet-20 trained 6.9x slower than in float32 (BENCHMARKS.md, "``precision: auto`` and
  TensorFlow's oneDNN switch").
"""

from __future__ import annotations

from typing import NamedTuple

from keras_resnet.cpu_kernels import cpu_flags, onednn_enabled


class PrecisionChoice(NamedTuple):
    """A resolved precision: the Keras policy name and why it was chosen."""

    policy: str
    reason: str


def resolve_precision(requested: str, gpu_capabilities: list[tuple[int, int]] | None = None,
                      tpu: bool = False, flags: frozenset[str] | None = None,
                      onednn: bool | None = None) -> PrecisionChoice:
    """The mixed-precision policy for ``requested`` (``auto`` or a policy name).

    Args:
        requested: ``training.precision``: ``auto``, ``float32``, ``mixed_float16``
            or ``mixed_bfloat16``. Anything but ``auto`` is returned as it is.
        gpu_capabilities: Compute capability ``(major, minor)`` of each visible GPU;
            None: ask TensorFlow.
        tpu: The run uses a TPU (``training.strategy: tpu``).
        flags: CPU feature flags; None: read ``/proc/cpuinfo``.
        onednn: TensorFlow's oneDNN kernels are on; None:
            `keras_resnet.cpu_kernels.onednn_enabled`.

    Returns:
        A `PrecisionChoice` (policy, reason).

    Example:
        >>> resolve_precision("auto", gpu_capabilities=[(7, 0)]).policy
        'mixed_float16'
        >>> resolve_precision("auto", gpu_capabilities=[], flags=frozenset({"avx2"})).policy
        'float32'
    """
    if requested != "auto":
        return PrecisionChoice(requested, "set in the config")
    if tpu:
        return PrecisionChoice("mixed_bfloat16", "auto: TPU")
    if gpu_capabilities is None:
        gpu_capabilities = visible_gpu_capabilities()
    if gpu_capabilities:
        oldest = min(gpu_capabilities)
        if oldest >= (8, 0):
            return PrecisionChoice("mixed_bfloat16", f"auto: GPU compute capability {oldest[0]}.{oldest[1]} >= 8.0")
        return PrecisionChoice("mixed_float16", f"auto: GPU compute capability {oldest[0]}.{oldest[1]} < 8.0")
    flags = cpu_flags() if flags is None else flags
    if "amx_bf16" in flags:
        if not (onednn_enabled(flags=flags) if onednn is None else onednn):
            return PrecisionChoice("float32", "auto: CPU with AMX-BF16, but oneDNN is off (TF_ENABLE_ONEDNN_OPTS): "
                                              "TensorFlow's own bfloat16 kernels are slower than float32")
        return PrecisionChoice("mixed_bfloat16", "auto: CPU with AMX-BF16")
    return PrecisionChoice("float32", "auto: CPU without AMX-BF16")


def visible_gpu_capabilities() -> list[tuple[int, int]]:
    """Compute capability of each GPU TensorFlow sees (GPUs that report none count as 0.0)."""
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu) or {}
        capabilities.append(tuple(details.get("compute_capability") or (0, 0)))
    return capabilities
