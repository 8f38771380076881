"""precision.py: ``training.precision: auto`` picks the policy from the hardware, and a run records it."""

import json

import keras
import numpy as np
import pytest
from synthetic import make_datasets, tiny_config

from keras_resnet.cpu_kernels import is_x86_64_linux, onednn_log_line, onednn_record
from keras_resnet.train.precision import resolve_precision
from keras_resnet.train.trainer import train


@pytest.mark.parametrize(
    ("gpus", "tpu", "flags", "expected"),
    [
        ([], True, frozenset(), "mixed_bfloat16"),
        ([(9, 0)], False, frozenset(), "mixed_bfloat16"),
        ([(8, 0), (8, 6)], False, frozenset(), "mixed_bfloat16"),
        ([(8, 0), (7, 5)], False, frozenset({"amx_bf16"}), "mixed_float16"),  # the oldest GPU decides
        ([(6, 1)], False, frozenset(), "mixed_float16"),
        ([], False, frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}), "mixed_bfloat16"),
        ([], False, frozenset({"avx512f", "avx512_bf16"}), "mixed_bfloat16"),  # e.g. AMD Zen 4/5, Intel Cooper Lake
        ([], False, frozenset({"avx512f", "avx512_vnni", "avx2"}), "float32"),  # no bfloat16 instructions
        ([], False, frozenset(), "float32"),
    ],
)
def test_auto_follows_the_hardware(gpus, tpu, flags, expected):
    choice = resolve_precision("auto", gpu_capabilities=gpus, tpu=tpu, flags=flags, onednn=True)
    assert choice.policy == expected and choice.reason.startswith("auto: ")


def test_auto_names_the_best_bfloat16_instructions_of_the_cpu():
    amx = resolve_precision("auto", gpu_capabilities=[], flags=frozenset({"avx512_bf16", "amx_bf16"}), onednn=True)
    assert amx.reason == "auto: CPU with AMX-BF16"
    avx512 = resolve_precision("auto", gpu_capabilities=[], flags=frozenset({"avx512_bf16"}), onednn=True)
    assert avx512.reason == "auto: CPU with AVX512-BF16"
    assert resolve_precision("auto", gpu_capabilities=[], flags=frozenset({"avx2"})).reason == (
        "auto: CPU without AMX-BF16 or AVX512-BF16")


@pytest.mark.parametrize(
    ("flags", "instructions"),
    [
        (frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}), "AMX-BF16"),  # Intel Sapphire Rapids
        (frozenset({"avx512f", "avx512_bf16", "avx512_vnni"}), "AVX512-BF16"),  # AMD Zen 5
    ],
)
def test_auto_keeps_float32_on_a_bfloat16_cpu_with_onednn_off(monkeypatch, flags, instructions):
    choice = resolve_precision("auto", gpu_capabilities=[], flags=flags, onednn=False)
    assert choice.policy == "float32" and f"{instructions}, but oneDNN is off" in choice.reason
    assert resolve_precision("auto", gpu_capabilities=[(9, 0)], flags=flags, onednn=False).policy == "mixed_bfloat16"
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert resolve_precision("auto", gpu_capabilities=[], flags=flags).policy == "float32"
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    assert resolve_precision("auto", gpu_capabilities=[], flags=flags).policy == "mixed_bfloat16"
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    assert resolve_precision("auto", gpu_capabilities=[], flags=flags).policy == (
        "mixed_bfloat16" if is_x86_64_linux() else "float32")  # TensorFlow's default: oneDNN on with either


@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_an_explicit_policy_is_kept_on_any_hardware(policy):
    assert resolve_precision(policy, gpu_capabilities=[(9, 0)], tpu=True, flags=frozenset({"amx_bf16"})) == (
        policy, "set in the config")


def test_a_mixed_bfloat16_run_trains_in_bfloat16_and_records_its_precision(tmp_path):
    seen = {}

    class Spy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            conv = next(layer for layer in self.model.layers if isinstance(layer, keras.layers.Conv2D))
            seen["compute"], seen["variable"] = conv.compute_dtype, conv.variable_dtype
            seen["head"] = self.model.get_layer("predictions").compute_dtype

    lines = []
    try:
        run = train(tiny_config(tmp_path / "run", epochs=1, precision="mixed_bfloat16"), datasets=make_datasets(),
                    callbacks=[Spy()], log=lines.append)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert seen == {"compute": "bfloat16", "variable": "float32", "head": "float32"}
    versions = json.loads((run / "versions.json").read_text())
    assert versions["precision"] == {"policy": "mixed_bfloat16", "reason": "set in the config"}
    assert versions["onednn"] == onednn_record()
    assert any("precision mixed_bfloat16 (set in the config)" in line for line in lines)
    kernel_lines = [line for line in lines if line.startswith("TensorFlow's CPU kernels: ")]
    assert kernel_lines == ([onednn_log_line(onednn_record())] if is_x86_64_linux() else [])
    # model.keras predicts in float32 once loaded (the policy is a training setting)
    model = keras.models.load_model(run / "model.keras", compile=False)
    assert model.predict(np.zeros((2, 32, 32, 3), "uint8"), verbose=0).dtype == np.float32
