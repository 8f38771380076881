"""torchvision ResNet-18/34 state dicts made of random numbers, and an independent by-hand assignment.

Shared by the converter tests (tests/models/test_weights.py) and the ImageNet download
tests (tests/models/test_imagenet_torchvision.py).
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np


def torchvision_state_dict(blocks=(2, 2, 2, 2), seed=0):
    """Random arrays with torchvision ResNet-18's key names and shapes."""
    rng = np.random.default_rng(seed)
    state = {}

    def conv(key, out_ch, in_ch, k):
        state[f"{key}.weight"] = rng.normal(0, (2 / (in_ch * k * k)) ** 0.5, (out_ch, in_ch, k, k)).astype("float32")

    def bn(key, ch):
        state[f"{key}.weight"] = rng.uniform(0.5, 1.5, ch).astype("float32")
        state[f"{key}.bias"] = rng.normal(0, 0.1, ch).astype("float32")
        state[f"{key}.running_mean"] = rng.normal(0, 0.1, ch).astype("float32")
        state[f"{key}.running_var"] = rng.uniform(0.5, 1.5, ch).astype("float32")
        state[f"{key}.num_batches_tracked"] = np.array(100, dtype=np.int64)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    in_ch = 64
    for stage, (n, ch) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
        for block in range(n):
            key = f"layer{stage}.{block}"
            conv(f"{key}.conv1", ch, in_ch, 3)
            bn(f"{key}.bn1", ch)
            conv(f"{key}.conv2", ch, ch, 3)
            bn(f"{key}.bn2", ch)
            if block == 0 and stage > 1:
                conv(f"{key}.downsample.0", ch, in_ch, 1)
                bn(f"{key}.downsample.1", ch)
            in_ch = ch
    state["fc.weight"] = rng.normal(0, 0.05, (1000, 512)).astype("float32")
    state["fc.bias"] = rng.normal(0, 0.05, 1000).astype("float32")
    return state


def set_by_hand(model, state):
    """Independent of the converter: every tensor placed by explicit name."""
    model.get_layer("conv1_conv").set_weights([state["conv1.weight"].transpose(2, 3, 1, 0)])
    bn = ("weight", "bias", "running_mean", "running_var")
    model.get_layer("conv1_bn").set_weights([state[f"bn1.{p}"] for p in bn])
    for stage in range(1, 5):
        block = 0
        while f"layer{stage}.{block}.conv1.weight" in state:
            torch_key, ours = f"layer{stage}.{block}", f"conv{stage + 1}_block{block + 1}"
            for z in (1, 2):
                kernel = state[f"{torch_key}.conv{z}.weight"]
                model.get_layer(f"{ours}_{z}_conv").set_weights([np.transpose(kernel, (2, 3, 1, 0))])
                model.get_layer(f"{ours}_{z}_bn").set_weights([state[f"{torch_key}.bn{z}.{p}"] for p in bn])
            if f"{torch_key}.downsample.0.weight" in state:
                kernel = state[f"{torch_key}.downsample.0.weight"]
                model.get_layer(f"{ours}_0_conv").set_weights([np.transpose(kernel, (2, 3, 1, 0))])
                model.get_layer(f"{ours}_0_bn").set_weights([state[f"{torch_key}.downsample.1.{p}"] for p in bn])
            block += 1
    model.get_layer("predictions").set_weights([state["fc.weight"].T, state["fc.bias"]])


def reference_script():
    """The module ``tests/models/data/make_torch_reference.py`` (regenerates the recorded torch logits), imported once."""
    path = Path(__file__).resolve().parents[1] / "models" / "data" / "make_torch_reference.py"
    spec = importlib.util.spec_from_file_location("make_torch_reference", path)
    if spec.name in sys.modules:
        return sys.modules[spec.name]
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
