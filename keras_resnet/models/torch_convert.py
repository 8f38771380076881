"""torchvision/timm ResNet-18/34 state dicts -> kresnet layers and weight files.

The converter maps torchvision's state-dict keys to our layer names::

    conv1.weight                     -> conv1_conv kernel, (O,I,kh,kw) -> (kh,kw,I,O)
    bn1.{weight,bias,running_mean,running_var} -> conv1_bn gamma/beta/moving_mean/moving_variance
    layer{X}.{Y}.conv{Z} / bn{Z}     -> conv{X+1}_block{Y+1}_{Z}_conv / _bn
    layer{X}.{Y}.downsample.0 / .1   -> conv{X+1}_block{Y+1}_0_conv / _0_bn
    fc.weight / fc.bias              -> predictions kernel (transposed) / bias

``num_batches_tracked`` is dropped; fp16/bf16 checkpoints are widened to float32.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from keras_resnet.models.specs import get_spec
from keras_resnet.models.weight_cache import CONVERTIBLE_MODELS, converted_weights_path
from keras_resnet.models.weight_files import read_torch_checkpoint
from keras_resnet.models.weight_loading import assign_by_name, save_weights

_BN_TORCH_TO_KERAS = {"weight": 0, "bias": 1, "running_mean": 2, "running_var": 3}

_BLOCK_KEY = re.compile(r"^layer(\d)\.(\d+)\.(conv\d|bn\d|downsample\.[01])\.(\w+)$")
_STEM_KEY = re.compile(r"^(conv1|bn1|fc)\.(\w+)$")


def _keras_layer_name(key: str) -> tuple[str, str] | None:
    """``(keras layer name, torch parameter name)`` of a torchvision key, or None."""
    match = _STEM_KEY.match(key)
    if match:
        return {"conv1": "conv1_conv", "bn1": "conv1_bn", "fc": "predictions"}[match.group(1)], match.group(2)
    match = _BLOCK_KEY.match(key)
    if not match:
        return None
    stage, block, part, param = int(match.group(1)), int(match.group(2)), match.group(3), match.group(4)
    prefix = f"conv{stage + 1}_block{block + 1}"
    if part.startswith("downsample"):
        suffix = "0_conv" if part.endswith("0") else "0_bn"
    else:
        suffix = f"{part[-1]}_{part[:-1]}"
    return f"{prefix}_{suffix}", param


def convert_torch_state_dict(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Map a torchvision/timm ResNet-18/34 state dict to ``{keras layer name: arrays}``.

    Convolution kernels go from (O, I, kh, kw) to (kh, kw, I, O), the fc kernel is
    transposed, BatchNorm ``weight, bias, running_mean, running_var`` become
    ``gamma, beta, moving_mean, moving_variance``; ``num_batches_tracked`` is dropped.

    Args:
        state: ``{torch key: array}`` (from `read_torch_checkpoint`).

    Returns:
        ``{keras layer name: [arrays in layer.get_weights() order]}``, float32.

    Raises:
        ValueError: keys that are not a torchvision basic-block ResNet's (listed).
    """
    layers: dict[str, dict[str, np.ndarray]] = {}
    unknown = []
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        mapped = _keras_layer_name(key)
        if mapped is None:
            unknown.append(key)
            continue
        layers.setdefault(mapped[0], {})[mapped[1]] = np.asarray(value, dtype=np.float32)
    if unknown:
        raise ValueError(
            f"{len(unknown)} checkpoint keys are not those of a torchvision/timm ResNet-18/34: "
            f"{', '.join(unknown[:8])}. Expected keys like conv1.weight, layer1.0.bn1.running_mean, fc.bias."
        )
    converted = {}
    for name, params in layers.items():
        if name.endswith("_bn"):
            needed = tuple(_BN_TORCH_TO_KERAS)
        else:
            needed = ("weight",) if name.endswith("_conv") else ("weight", "bias")
        missing = [p for p in needed if p not in params]
        if missing:
            raise ValueError(
                f"Layer {name} lacks {missing} in the checkpoint (it has {sorted(params)}). Expected a complete "
                "torchvision/timm ResNet-18/34 state dict."
            )
        if name.endswith("_conv"):
            converted[name] = [np.transpose(params["weight"], (2, 3, 1, 0))]
        elif name.endswith("_bn"):
            converted[name] = [params[p] for p in _BN_TORCH_TO_KERAS]
        else:  # predictions
            converted[name] = [np.transpose(params["weight"]), params["bias"]]
    return converted


def convert_weights(name: str, checkpoint: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    """Convert a torchvision/timm ResNet-18/34 checkpoint into a kresnet weights file.

    Builds the model (1000 classes, or the checkpoint's fc size), loads the
    converted arrays with every shape checked and saves ``output`` atomically.

    Args:
        name: ``"resnet18"`` or ``"resnet34"``.
        checkpoint: A ``.safetensors`` or ``.pth`` file (read without torch when
            torch is not installed; see `read_torch_checkpoint`).
        output: Destination ``.weights.h5``; default `converted_weights_path(name)`,
            where ``build_resnet(name, weights="imagenet")`` looks.

    Returns:
        The written path.

    Raises:
        ValueError: an unsupported model, or a checkpoint that does not fit it.

    Example:
        >>> convert_weights("resnet18", "model.safetensors")
        PosixPath('/root/.keras/models/kresnet/resnet18_imagenet.weights.h5')
    """
    if name not in CONVERTIBLE_MODELS:
        raise ValueError(f"Conversion supports {', '.join(CONVERTIBLE_MODELS)}. Received: name={name!r}")
    from keras_resnet.models.resnet import build_resnet

    converted = convert_torch_state_dict(read_torch_checkpoint(checkpoint))
    num_classes = converted["predictions"][1].shape[0] if "predictions" in converted else 1000
    model = build_resnet(name, num_classes=num_classes, include_top="predictions" in converted)
    report = assign_by_name(model, converted, str(checkpoint))
    if report.missing or report.skipped or report.unused:
        raise ValueError(f"Checkpoint {checkpoint} does not fit {name} exactly:\n{report.summary()}")
    return save_weights(model, output if output is not None else converted_weights_path(get_spec(name).name))
