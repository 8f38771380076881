"""Layer names of a ResNet, in one place: stem, stages, blocks, head, and the walk over leaf layers.

The names follow keras.applications (so its ImageNet weight files load by name) and
are what freezing by stage, per-stage learning rates, weight loading and
`replace_head` key on:

* stem: ``conv1_*`` (``conv1_pad``, ``conv1_conv``, ``conv1_bn``, ``conv1_relu``) and
  ``pool1_*``;
* stage ``s`` (1-based): ``conv{s+1}_*``, block ``b`` (1-based) of it
  ``conv{s+1}_block{b}_*`` (stage 1 is ``conv2``);
* after the last stage (v2 models): ``post_bn``, ``post_relu`` (``post_*``);
* head: ``avg_pool`` or ``max_pool``, ``head_dropout``, ``head_dense_{i}``,
  ``head_dropout_{i}`` and ``predictions``.

Pure Python: no Keras import (the walk only reads ``.layers``).

Example:
    >>> stage_prefix(1), block_prefix(1, 2), layer_group("conv3_block1_1_conv")
    ('conv2', 'conv2_block2', 'stage2')
"""

from __future__ import annotations

from collections.abc import Iterator

from keras_resnet.config.choices import choices
from keras_resnet.config.schema import Pooling

#: Stem layers: ``conv1_*`` and ``pool1_*``.
STEM_PREFIXES = ("conv1_", "pool1_")
#: The stem convolution (the first layer after the input and any preprocessing/padding).
STEM_CONV = "conv1_conv"
#: Layers after the last stage that belong to it (v2 models' final BN-ReLU).
POST_PREFIXES = ("post_",)
#: Global pooling layer of the head, by ``pooling`` argument (``model.pooling``'s choices).
POOLING_LAYER_NAMES = {mode: f"{mode}_pool" for mode in choices(Pooling)}
#: The classifier's output layer.
PREDICTIONS = "predictions"
#: Prefix of the head's optional layers (``head_dropout``, ``head_dense_1`` ...).
HEAD_PREFIX = "head_"
HEAD_DROPOUT = "head_dropout"
#: Layer names (exact) and prefixes that make up the classifier head.
HEAD_LAYER_NAMES = (*POOLING_LAYER_NAMES.values(), PREDICTIONS)
HEAD_LAYER_PREFIXES = (HEAD_PREFIX,)

#: Groups returned by `layer_group` besides ``"stage{k}"``.
STEM = "stem"
POST = "post"
HEAD = "head"
OTHER = "other"


def stage_prefix(stage: int) -> str:
    """Name prefix of residual stage ``stage`` (1-based): ``conv2`` for stage 1.

    Its layers are named ``f"{stage_prefix(stage)}_..."``.
    """
    return f"conv{stage + 1}"


def block_prefix(stage: int, block: int) -> str:
    """Name prefix of block ``block`` (1-based) of stage ``stage`` (1-based): ``conv2_block1``."""
    return f"{stage_prefix(stage)}_block{block}"


def head_dense_name(index: int) -> str:
    """Name of the head's ``index``-th hidden Dense layer (1-based): ``head_dense_1``."""
    return f"{HEAD_PREFIX}dense_{index}"


def head_dropout_name(index: int | None = None) -> str:
    """``head_dropout`` (before the first Dense layer), or ``head_dropout_{index}`` after hidden layer ``index``."""
    return HEAD_DROPOUT if index is None else f"{HEAD_DROPOUT}_{index}"


def is_head_layer(name: str) -> bool:
    """True for the classifier head's layers (pooling, ``head_*``, ``predictions``)."""
    return name in HEAD_LAYER_NAMES or name.startswith(HEAD_LAYER_PREFIXES)


def stage_of(name: str) -> int | None:
    """The 1-based stage of a layer named ``conv{k}_...`` with ``k >= 2``, else None (stem included)."""
    if name.startswith("conv") and "_" in name:
        number = name[4 : name.index("_")]
        if number.isdigit() and int(number) >= 2:
            return int(number) - 1
    return None


def layer_group(name: str) -> str:
    """Which part of a ResNet a layer belongs to, by its name.

    Returns:
        ``"stem"`` (``conv1_*``, ``pool1_*``), ``"stage{k}"`` (``conv{k+1}_*``),
        ``"post"`` (``post_bn``/``post_relu`` of v2 models), ``"head"``
        (``avg_pool``, ``max_pool``, ``head_*``, ``predictions``) or ``"other"``.

    Example:
        >>> layer_group("conv3_block1_1_conv")
        'stage2'
    """
    if is_head_layer(name):
        return HEAD
    if name.startswith(STEM_PREFIXES):
        return STEM
    if name.startswith(POST_PREFIXES):
        return POST
    stage = stage_of(name)
    return f"stage{stage}" if stage is not None else OTHER


def leaf_layers(model) -> Iterator:
    """Every layer of ``model`` that is not itself a model, nested models descended into, in order.

    A ``keras.applications`` backbone wrapped in a functional model (or a
    ``Sequential``) yields its own layers, so names such as ``conv2_block1_1_conv``
    are found at any depth.
    """
    for layer in model.layers:
        if getattr(layer, "layers", None):  # a nested model: descend
            yield from leaf_layers(layer)
        else:
            yield layer


def count_stages(model) -> int:
    """Number of residual stages of ``model`` (4 for ImageNet ResNets, 3 for CIFAR), from its layer names."""
    return len({stage_of(layer.name) for layer in leaf_layers(model)} - {None})
