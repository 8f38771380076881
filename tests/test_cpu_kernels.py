"""cpu_kernels.py: TensorFlow's oneDNN rule, kresnet's default for the command line, and what a run records."""

import os
import subprocess
import sys

import pytest

from keras_resnet.cpu_kernels import (
    ONEDNN_ENV,
    cpu_flags,
    cpu_model,
    default_onednn_on,
    is_x86_64_linux,
    onednn_enabled,
    onednn_log_line,
    onednn_record,
    tensorflow_onednn_default,
)

ZEN3 = frozenset({"fpu", "sse4_2", "avx", "avx2", "fma"})
CASCADE_LAKE = frozenset({"avx2", "avx512f", "avx512_vnni"})
SAPPHIRE_RAPIDS = frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})


def test_cpu_flags_and_model_read_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2 fma\nbugs\t\t: spectre\n")
    assert cpu_flags(info) == {"fpu", "avx2", "fma"}
    assert cpu_model(info) == "AMD EPYC 7B13"
    assert cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize(("flags", "expected"), [(ZEN3, False), (frozenset(), False), (CASCADE_LAKE, True),
                                                 (SAPPHIRE_RAPIDS, True), (frozenset({"avx2", "avx_vnni"}), True)])
def test_tensorflow_turns_onednn_on_by_itself_only_with_vnni_or_amx(flags, expected):
    assert tensorflow_onednn_default(flags, x86_64_linux=True) is expected
    assert tensorflow_onednn_default(flags, x86_64_linux=False) is False


@pytest.mark.parametrize(("value", "flags", "expected"), [
    (None, ZEN3, False), (None, SAPPHIRE_RAPIDS, True), ("1", ZEN3, True), ("true", ZEN3, True), (" TRUE ", ZEN3, True),
    ("0", SAPPHIRE_RAPIDS, False), ("false", SAPPHIRE_RAPIDS, False), ("FALSE", SAPPHIRE_RAPIDS, False),
    ("yes", ZEN3, False), ("yes", SAPPHIRE_RAPIDS, True),  # not a value TensorFlow reads: its default stands
])
def test_onednn_enabled_reads_the_variable_then_tensorflows_default(value, flags, expected):
    environ = {} if value is None else {ONEDNN_ENV: value}
    assert onednn_enabled(environ, flags, x86_64_linux=True) is expected


def test_default_onednn_on_sets_the_variable_only_when_unset_before_tensorflow_on_x86_64_linux():
    environ = {}
    assert default_onednn_on(environ, tensorflow_loaded=False, x86_64_linux=True) is True
    assert environ == {ONEDNN_ENV: "1"}
    kept = {ONEDNN_ENV: "0"}
    assert default_onednn_on(kept, tensorflow_loaded=False, x86_64_linux=True) is False and kept == {ONEDNN_ENV: "0"}
    late = {}
    assert default_onednn_on(late, tensorflow_loaded=True, x86_64_linux=True) is False and late == {}
    elsewhere = {}
    assert default_onednn_on(elsewhere, tensorflow_loaded=False, x86_64_linux=False) is False and elsewhere == {}


def test_is_x86_64_linux():
    assert is_x86_64_linux("Linux", "x86_64") and is_x86_64_linux("Linux", "AMD64")
    assert not is_x86_64_linux("Linux", "aarch64") and not is_x86_64_linux("Darwin", "x86_64")


def test_the_record_and_the_log_line_say_which_kernels_ran_and_how_to_change_it():
    off = onednn_record({}, ZEN3, x86_64_linux=True)
    assert off == {"enabled": False, ONEDNN_ENV: None, "tensorflow_default": False}
    assert "not oneDNN (TensorFlow's default)" in onednn_log_line(off) and f"set {ONEDNN_ENV}=1" in onednn_log_line(off)
    chosen_off = onednn_record({ONEDNN_ENV: "0"}, ZEN3, x86_64_linux=True)
    assert onednn_log_line(chosen_off) == f"TensorFlow's CPU kernels: its own, not oneDNN ({ONEDNN_ENV}=0)"
    on = onednn_record({ONEDNN_ENV: "1"}, ZEN3, x86_64_linux=True)
    assert on["enabled"] and onednn_log_line(on) == f"TensorFlow's CPU kernels: oneDNN ({ONEDNN_ENV}=1)"


KERNELS_PROBE = (
    "from keras_resnet.compat import import_tensorflow_quietly; import_tensorflow_quietly(); "
    "import os; from tensorflow.python.util import _pywrap_util_port as port; "
    f"print(port.IsMklEnabled(), os.environ.get('{ONEDNN_ENV}'))"
)


@pytest.mark.skipif(not is_x86_64_linux(), reason="TensorFlow's oneDNN switch as measured: x86-64 Linux")
@pytest.mark.parametrize(("value", "expected"), [(None, "True 1"), ("0", "False 0")])
def test_the_command_lines_tensorflow_runs_onednn_unless_the_user_said_no(value, expected):
    """In a fresh process, as `kresnet` starts TensorFlow: oneDNN on whatever the CPU, or off when asked."""
    env = {k: v for k, v in os.environ.items() if k != ONEDNN_ENV}
    if value is not None:
        env[ONEDNN_ENV] = value
    done = subprocess.run([sys.executable, "-c", KERNELS_PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == expected
