"""Which CPU kernels TensorFlow runs, and kresnet's default for them.

TensorFlow's x86-64 Linux wheels carry two sets of CPU kernels: its own and oneDNN's.
TensorFlow 2.21 turns oneDNN on by itself only on CPUs with one of AVX512-VNNI,
AVX512-BF16, AVX-VNNI or AMX (``IsMKLEnabled`` in tensorflow/core/util/util.cc), and
reads ``TF_ENABLE_ONEDNN_OPTS`` once, while it loads: setting it later changes nothing.
On CPUs without those features (AMD EPYC/Ryzen up to Zen 3, Intel before Cascade Lake)
TensorFlow's own float32 kernels trained ResNet-20 about half as fast as oneDNN's
(BENCHMARKS.md, "oneDNN on CPUs without AVX512-VNNI or AMX"). So the ``kresnet`` command
starts TensorFlow with oneDNN on (`default_onednn_on`, called by
`keras_resnet.compat.import_tensorflow_quietly`) unless the user set the variable;
``TF_ENABLE_ONEDNN_OPTS=0`` keeps TensorFlow's own kernels. A notebook that imports
TensorFlow itself gets TensorFlow's default; the run log says which kernels ran.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
#: CPU flags (``/proc/cpuinfo`` spelling) with which TensorFlow turns oneDNN on by itself.
TENSORFLOW_ONEDNN_FLAGS = frozenset({"avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"})


def cpuinfo_field(name: str, cpuinfo: Path = CPUINFO) -> str | None:
    """The value of the first ``name`` line of ``/proc/cpuinfo`` (None where the file or the line is missing)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where that file does not exist)."""
    return frozenset((cpuinfo_field("flags", cpuinfo) or "").split())


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` where that file does not say)."""
    return cpuinfo_field("model name", cpuinfo) or platform.processor()


def is_x86_64_linux(system: str | None = None, machine: str | None = None) -> bool:
    """Whether this is x86-64 Linux, where TensorFlow's oneDNN rule above holds."""
    system = platform.system() if system is None else system
    machine = platform.machine() if machine is None else machine
    return system == "Linux" and machine.lower() in ("x86_64", "amd64")


def tensorflow_onednn_default(flags: frozenset[str] | None = None, x86_64_linux: bool | None = None) -> bool:
    """Whether TensorFlow turns oneDNN on by itself (``TF_ENABLE_ONEDNN_OPTS`` unset).

    Args:
        flags: CPU feature flags; None: read ``/proc/cpuinfo``.
        x86_64_linux: The machine is x86-64 Linux; None: `is_x86_64_linux`. Elsewhere
            the answer is False (the rule is not known here).

    Example:
        >>> tensorflow_onednn_default(frozenset({"avx2", "fma"}), x86_64_linux=True)
        False
        >>> tensorflow_onednn_default(frozenset({"avx512f", "avx512_vnni"}), x86_64_linux=True)
        True
    """
    if not (is_x86_64_linux() if x86_64_linux is None else x86_64_linux):
        return False
    flags = cpu_flags() if flags is None else flags
    return bool(flags & TENSORFLOW_ONEDNN_FLAGS)


def onednn_enabled(environ=None, flags: frozenset[str] | None = None, x86_64_linux: bool | None = None) -> bool:
    """Whether TensorFlow runs (or, not yet loaded, will run) its oneDNN CPU kernels.

    ``TF_ENABLE_ONEDNN_OPTS`` decides when it is 1/true or 0/false (any case, spaces
    ignored); unset or anything else, TensorFlow's own default
    (`tensorflow_onednn_default`).

    Args:
        environ: The environment; None: ``os.environ``.
        flags: CPU feature flags; None: read ``/proc/cpuinfo``.
        x86_64_linux: The machine is x86-64 Linux; None: `is_x86_64_linux`.
    """
    value = (os.environ if environ is None else environ).get(ONEDNN_ENV, "").strip().lower()
    if value in ("1", "true"):
        return True
    if value in ("0", "false"):
        return False
    return tensorflow_onednn_default(flags, x86_64_linux)


def default_onednn_on(environ=None, tensorflow_loaded: bool | None = None, x86_64_linux: bool | None = None) -> bool:
    """Set ``TF_ENABLE_ONEDNN_OPTS=1`` before TensorFlow loads, unless the user set it.

    Only on x86-64 Linux (where it was measured) and only while TensorFlow is not yet
    imported (it reads the variable once, at load).

    Args:
        environ: The environment to change; None: ``os.environ``.
        tensorflow_loaded: TensorFlow is already imported; None: look in ``sys.modules``.
        x86_64_linux: The machine is x86-64 Linux; None: `is_x86_64_linux`.

    Returns:
        True when this call set the variable.
    """
    environ = os.environ if environ is None else environ
    loaded = "tensorflow" in sys.modules if tensorflow_loaded is None else tensorflow_loaded
    if ONEDNN_ENV in environ or loaded or not (is_x86_64_linux() if x86_64_linux is None else x86_64_linux):
        return False
    environ[ONEDNN_ENV] = "1"
    return True


def onednn_record(environ=None, flags: frozenset[str] | None = None, x86_64_linux: bool | None = None) -> dict:
    """What a run records of TensorFlow's CPU kernels: ``{"enabled", "TF_ENABLE_ONEDNN_OPTS", "tensorflow_default"}``."""
    environ = os.environ if environ is None else environ
    flags = cpu_flags() if flags is None else flags
    return {
        "enabled": onednn_enabled(environ, flags, x86_64_linux),
        ONEDNN_ENV: environ.get(ONEDNN_ENV),
        "tensorflow_default": tensorflow_onednn_default(flags, x86_64_linux),
    }


def onednn_log_line(record: dict) -> str:
    """One line for the run log from an `onednn_record`, with the fix when oneDNN is off by default.

    Example:
        >>> onednn_log_line({"enabled": True, "TF_ENABLE_ONEDNN_OPTS": "1", "tensorflow_default": False})
        "TensorFlow's CPU kernels: oneDNN (TF_ENABLE_ONEDNN_OPTS=1)"
    """
    setting = f"{ONEDNN_ENV}={record[ONEDNN_ENV]}" if record[ONEDNN_ENV] is not None else "TensorFlow's default"
    if record["enabled"]:
        return f"TensorFlow's CPU kernels: oneDNN ({setting})"
    line = f"TensorFlow's CPU kernels: its own, not oneDNN ({setting})"
    if record[ONEDNN_ENV] is None:
        line += (f"; training on this CPU runs about twice as fast with oneDNN: set {ONEDNN_ENV}=1 before "
                 "TensorFlow is imported (the kresnet command does)")
    return line
