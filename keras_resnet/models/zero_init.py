"""Residual branches that start at zero, so every block starts as its shortcut.

Goyal et al. 2017 ("Accurate, Large Minibatch SGD", section 5.1) initialise the scale
of the last BatchNorm of each residual branch to zero: at the first step each block
passes its shortcut through (plus the BatchNorm's offset) and the network behaves like
a shallower one, which eases the start of training at high learning rates. torchvision's
``zero_init_residual`` and timm do the same. A pre-activation (v2) branch ends in a
convolution instead of a BatchNorm, so there that convolution starts at zero.

The last layer of a branch is found from the builders' layer names
(`keras_resnet.models.blocks`): for each residual ``Add`` (``{block}_add`` in v1,
``{block}_out`` in v2) it is the block's highest-numbered ``{block}_{i}_bn`` (v1) or
``{block}_{i}_conv`` (v2), ``i >= 1`` (``_0_`` is the projection shortcut). Only the
initial values change: the layers stay Keras' own and train as usual.

Example:
    >>> model = build_resnet("resnet20", num_classes=10)
    >>> zero_init_residual_branches(model)[:2]
    ['conv2_block1_2_bn', 'conv2_block2_2_bn']
"""

from __future__ import annotations

import re

import keras
import numpy as np

from keras_resnet.models.naming import leaf_layers

#: ``{block}_{i}_bn`` / ``{block}_{i}_conv``: a numbered layer of a block.
_BLOCK_LAYER = re.compile(r"(?P<block>.+)_(?P<index>\d+)_(?P<kind>bn|conv)")


def residual_branch_ends(model) -> list[keras.layers.Layer]:
    """The last layer of every residual branch of a kresnet ResNet, in block order.

    Args:
        model: A model built by `keras_resnet.build_resnet`.

    Returns:
        One BatchNormalization (v1 blocks) or Conv2D (pre-activation v2 blocks) per block.

    Raises:
        ValueError: when a residual ``Add`` has no numbered branch layer (not a kresnet model).
    """
    adds, branch_layers = [], {}
    for layer in leaf_layers(model):
        if isinstance(layer, keras.layers.Add):
            adds.append(layer)
        match = _BLOCK_LAYER.fullmatch(layer.name)
        if match and int(match["index"]) >= 1:
            # At the same index the BatchNorm comes after the convolution (v1: conv-BN).
            key = (int(match["index"]), match["kind"] == "bn")
            branch_layers.setdefault(match["block"], []).append((key, layer))
    ends = []
    for add in adds:
        block = add.name.rsplit("_", 1)[0]
        if block not in branch_layers:
            raise ValueError(f"Residual layer {add.name!r} has no '{block}_<i>_bn' or '{block}_<i>_conv' branch layer: "
                             "expected a model built by keras_resnet.build_resnet")
        ends.append(max(branch_layers[block], key=lambda candidate: candidate[0])[1])
    return ends


def zero_init_residual_branches(model) -> list[str]:
    """Set the last layer of every residual branch to zero: BatchNorm ``gamma`` (v1), or kernel and bias (v2).

    Args:
        model: A freshly built kresnet ResNet (trained weights would be overwritten).

    Returns:
        The names of the layers changed, in block order.
    """
    names = []
    for layer in residual_branch_ends(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.gamma.assign(np.zeros(layer.gamma.shape, dtype="float32"))
        else:
            for weight in layer.weights:
                weight.assign(np.zeros(weight.shape, dtype="float32"))
        names.append(layer.name)
    return names
