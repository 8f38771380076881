"""``training.precision: auto``: the compute precision that is fastest where a run starts.

The rule, from measurements (BENCHMARKS.md, "Training throughput"):

* a TPU: ``mixed_bfloat16`` (its native format);
* GPUs: ``mixed_bfloat16`` when every visible GPU has compute capability 8.0 or more
  (Ampere and later run bfloat16 at float16 speed without loss scaling),
  ``mixed_float16`` before that (tensor cores, with loss scaling);
* a CPU with bfloat16 instructions, AMX-BF16 (Intel Sapphire Rapids and later) or
  AVX512-BF16 (e.g. Intel Cooper Lake, AMD Zen 4 and 5): ``mixed_bfloat16``. On 2 cores
  with AMX, ResNet-20 trained 1.1-1.7x faster than in float32; on 2 cores of an AMD Zen 5
  (AVX512-BF16, no AMX), ResNet-32 trained 1.51x faster (BENCHMARKS.md, "bfloat16
  without AMX");
* any other CPU: ``float32`` (not measured faster: without those instructions oneDNN
  converts bfloat16 in software);
* also ``float32`` on those CPUs when TensorFlow's oneDNN kernels are switched off
  (``TF_ENABLE_ONEDNN_OPTS=0``): TensorFlow's own bfloat16 kernels use neither AMX nor
  AVX512-BF16, and on the AMX machine ResNet-20 trained 6.9x slower than in float32
  (BENCHMARKS.md, "``precision: auto`` and TensorFlow's oneDNN switch").
"""

from __future__ import annotations

from typing import NamedTuple

from keras_resnet.cpu_kernels import cpu_flags, onednn_enabled

#: CPU flags (``/proc/cpuinfo`` spelling) of bfloat16 instructions that oneDNN uses, best first, with their names.
CPU_BFLOAT16_FLAGS = (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16"))


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
        >>> resolve_precision("auto", gpu_capabilities=[], flags=frozenset({"avx512_bf16"}), onednn=True).reason
        'auto: CPU with AVX512-BF16'
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
    instruction_set = next((name for flag, name in CPU_BFLOAT16_FLAGS if flag in flags), None)
    if instruction_set is None:
        return PrecisionChoice("float32", "auto: CPU without AMX-BF16 or AVX512-BF16")
    cpu = f"CPU with {instruction_set}"
    if not (onednn_enabled(flags=flags) if onednn is None else onednn):
        return PrecisionChoice("float32", f"auto: {cpu}, but oneDNN is off (TF_ENABLE_ONEDNN_OPTS): "
                                          "TensorFlow's own bfloat16 kernels are slower than float32")
    return PrecisionChoice("mixed_bfloat16", f"auto: {cpu}")


def visible_gpu_capabilities() -> list[tuple[int, int]]:
    """Compute capability of each GPU TensorFlow sees (GPUs that report none count as 0.0)."""
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu) or {}
        capabilities.append(tuple(details.get("compute_capability") or (0, 0)))
    return capabilities
