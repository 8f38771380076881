"""Converted torchvision/timm ResNet-18/34 checkpoints reproduce PyTorch's own logits.

``data/torch_resnet_reference.json`` was recorded once on a machine with torch 2.11,
torchvision 0.26 and timm 1.0.29 (both libraries gave identical keys and logits), and
checked again with torch 2.13 / torchvision 0.28 by ``data/make_torch_reference.py
--check``, the script that regenerates it: each model (num_classes=10) filled, in
``state_dict`` order, with the seeded numbers of `seeded_state_dict`, run in eval mode on
a seeded input. These tests need no torch: they rebuild the same numbers, write them as
a checkpoint with torchvision's key names (``.safetensors``, or ``.pth`` in torch.save's
zip format read by the torch-free reader), convert it and compare logits.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from torch_pth import write_pth  # tests/helpers
from torchvision_state import reference_script

import keras_resnet as kr
from keras_resnet.models.weights import convert_weights

DATA = Path(__file__).parent / "data"
REFERENCE = json.loads((DATA / "torch_resnet_reference.json").read_text())




_SCRIPT = reference_script()
seeded_state_dict = _SCRIPT.seeded_state_dict
reference_input = _SCRIPT.reference_input


def write_checkpoint(path: Path, state: dict, fmt: str) -> Path:
    if fmt == "pth":
        # torchvision's state dicts also hold num_batches_tracked (int64 scalars).
        full = {}
        for key, value in state.items():
            full[key] = value
            if key.endswith("running_var"):
                full[key.replace("running_var", "num_batches_tracked")] = np.array(0, np.int64)
        return write_pth(path, full)
    save_file(state, str(path))
    return path


@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
@pytest.mark.parametrize("name", ["resnet18", "resnet34"])
def test_converted_checkpoint_matches_recorded_torchvision_logits(name, fmt, tmp_path, monkeypatch):
    if fmt == "pth":
        monkeypatch.setitem(sys.modules, "torch", None)  # the torch-free reader, also where torch is installed
    reference = REFERENCE["models"][name]
    checkpoint = write_checkpoint(tmp_path / f"{name}.{fmt}", seeded_state_dict(reference["keys"]), fmt)

    weights = convert_weights(name, checkpoint, tmp_path / f"{name}.weights.h5")
    model = kr.build_resnet(name, num_classes=10, input_shape=(64, 64, 3), classifier_activation=None, weights=str(weights))

    logits = model.predict(np.transpose(reference_input(), (0, 2, 3, 1)), verbose=0)
    expected = np.asarray(reference["logits"], dtype=np.float32)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=2e-4 * np.abs(expected).max())
    assert np.argmax(logits, axis=1).tolist() == np.argmax(expected, axis=1).tolist()


def test_regeneration_script_describes_the_recorded_json():
    """The script writes exactly this structure; its numpy parts agree with what is recorded."""
    assert set(REFERENCE) == {"about", "versions", "models"}
    assert REFERENCE["about"] == _SCRIPT.ABOUT
    assert set(REFERENCE["versions"]) == {"torch", "torchvision", "timm"}
    assert tuple(REFERENCE["models"]) == _SCRIPT.MODELS
    for record in REFERENCE["models"].values():
        assert set(record) == {"keys", "logits"}
        assert np.shape(record["logits"]) == (_SCRIPT.INPUT_SHAPE[0], _SCRIPT.NUM_CLASSES)
        assert not any(key.endswith("num_batches_tracked") for key, _ in record["keys"])
    assert reference_input().shape == _SCRIPT.INPUT_SHAPE and reference_input().dtype == np.float32
    # The file is json.dumps output with no trailing newline, as the script writes it.
    assert (DATA / "torch_resnet_reference.json").read_text() == json.dumps(REFERENCE)
