"""Converted torchvision/timm ResNet-18/34 checkpoints reproduce PyTorch's own logits.

``data/torch_resnet_reference.json`` was recorded once on a machine with torch 2.11,
torchvision 0.26 and timm 1.0.29 (both libraries gave identical keys and logits): each
model (num_classes=10) was filled, in ``state_dict`` order, with the seeded numbers that
`seeded_state_dict` below regenerates, and run in eval mode on a seeded input. These
tests need no torch: they rebuild the same numbers, write them as a ``.safetensors``
checkpoint with torchvision's key names, convert it and compare logits.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import keras_resnet as kr
from keras_resnet.models.weights import convert_weights

REFERENCE = json.loads((Path(__file__).parent / "data" / "torch_resnet_reference.json").read_text())


def seeded_state_dict(keys, seed=123):
    """The exact numbers the reference run put into the torch model, key by key."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in keys:
        shape = tuple(shape)
        if key.endswith("running_var"):
            arr = rng.uniform(0.5, 1.5, shape)
        elif key.endswith("running_mean"):
            arr = rng.normal(0, 0.1, shape)
        elif key.endswith("bn1.weight") or (".bn" in key and key.endswith("weight")) or "downsample.1.weight" in key:
            arr = rng.uniform(0.5, 1.5, shape)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            arr = rng.normal(0, 1.0 / np.sqrt(fan_in), shape)
        state[key] = arr.astype(np.float32)
    return state


@pytest.mark.parametrize("name", ["resnet18", "resnet34"])
def test_converted_checkpoint_matches_recorded_torchvision_logits(name, tmp_path):
    reference = REFERENCE["models"][name]
    checkpoint = tmp_path / f"{name}.safetensors"
    save_file(seeded_state_dict(reference["keys"]), str(checkpoint))

    weights = convert_weights(name, checkpoint, tmp_path / f"{name}.weights.h5")
    model = kr.build_resnet(name, num_classes=10, input_shape=(64, 64, 3), classifier_activation=None, weights=str(weights))

    images_nchw = np.random.default_rng(7).random((2, 3, 64, 64)).astype(np.float32)
    logits = model.predict(np.transpose(images_nchw, (0, 2, 3, 1)), verbose=0)
    expected = np.asarray(reference["logits"], dtype=np.float32)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=2e-4 * np.abs(expected).max())
    assert np.argmax(logits, axis=1).tolist() == np.argmax(expected, axis=1).tolist()
