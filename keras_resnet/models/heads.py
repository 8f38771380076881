"""The classifier head (global pooling -> dropout -> hidden Dense -> ``predictions``) and
`replace_head`, the Keras form of ``model.fc = nn.Linear(model.fc.in_features, N)``.

The head always computes in float32, also under a mixed-precision policy, so the
softmax and the loss stay numerically safe.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from keras_resnet.models.naming import (
    POOLING_LAYER_NAMES,
    PREDICTIONS,
    head_dense_name,
    head_dropout_name,
)

CLASSIFIER_ACTIVATIONS = (None, "softmax", "sigmoid", "linear")


def validate_head_args(num_classes, pooling, dropout, hidden_units, classifier_activation, include_top=True):
    """Check head arguments before any layer is built.

    Raises:
        ValueError: naming the bad argument, its value and what is accepted.
    """
    if include_top:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1. Received: num_classes={num_classes!r}")
        if pooling not in POOLING_LAYER_NAMES:
            raise ValueError(
                f"With include_top=True, pooling must be one of {tuple(POOLING_LAYER_NAMES)}. "
                f"Received: pooling={pooling!r}"
            )
        if classifier_activation not in CLASSIFIER_ACTIVATIONS:
            raise ValueError(
                "classifier_activation must be one of "
                f"{CLASSIFIER_ACTIVATIONS}. Received: classifier_activation={classifier_activation!r}"
            )
    elif pooling is not None and pooling not in POOLING_LAYER_NAMES:
        raise ValueError(f"pooling must be None or one of {tuple(POOLING_LAYER_NAMES)}. Received: pooling={pooling!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a float in [0, 1). Received: dropout={dropout!r}")
    units = tuple(hidden_units or ())
    if any(isinstance(u, bool) or not isinstance(u, int) or u < 1 for u in units):
        raise ValueError(
            f"hidden_units must be a sequence of positive integers. Received: hidden_units={hidden_units!r}"
        )


def global_pool(features, pooling: str | None):
    """Apply ``avg_pool`` / ``max_pool`` (float32), or return ``features`` unchanged for None."""
    if pooling is None:
        return features
    pool_cls = layers.GlobalAveragePooling2D if pooling == "avg" else layers.GlobalMaxPooling2D
    return pool_cls(name=POOLING_LAYER_NAMES[pooling], dtype="float32")(features)


def classifier_head(
    features,
    num_classes: int,
    pooling: str = "avg",
    dropout: float = 0.0,
    hidden_units: Sequence[int] = (),
    classifier_activation: str | None = "softmax",
):
    """Build the classifier head on a 4-D feature map.

    Layers: ``avg_pool`` (or ``max_pool``) -> ``head_dropout`` (if ``dropout > 0``) ->
    ``head_dense_1`` .. (ReLU, one per ``hidden_units`` entry, each followed by
    ``head_dropout_i`` when ``dropout > 0``) -> ``predictions``. All float32.

    Args:
        features: A 4-D Keras tensor (NHWC).
        num_classes: Output classes (>= 1).
        pooling: ``"avg"`` or ``"max"``.
        dropout: Dropout rate before each Dense layer.
        hidden_units: Sizes of optional hidden fully connected layers.
        classifier_activation: ``"softmax"`` (default), ``None`` for logits, ...

    Returns:
        The output tensor of the ``predictions`` layer.
    """
    validate_head_args(num_classes, pooling, dropout, hidden_units, classifier_activation)
    x = global_pool(features, pooling)
    if dropout > 0:
        x = layers.Dropout(dropout, name=head_dropout_name(), dtype="float32")(x)
    for i, units in enumerate(hidden_units or (), start=1):
        x = layers.Dense(units, activation="relu", name=head_dense_name(i), dtype="float32")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name=head_dropout_name(i), dtype="float32")(x)
    return layers.Dense(num_classes, activation=classifier_activation, name=PREDICTIONS, dtype="float32")(x)


def find_feature_layer(model: keras.Model) -> keras.layers.Layer:
    """The last layer of ``model`` whose output is a 4-D feature map (the backbone's end).

    Args:
        model: A functional model (kresnet or keras.applications ResNet).

    Returns:
        That layer, e.g. ``conv5_block3_out`` or ``post_relu``.

    Raises:
        ValueError: if the model has no 4-D output anywhere.
    """
    for layer in reversed(model.layers):
        output = getattr(layer, "output", None)
        if output is not None and not isinstance(output, (list, tuple)) and len(output.shape) == 4:
            return layer
    raise ValueError(
        f"Model {model.name!r} has no layer with a 4-D (N, H, W, C) output to put a head on. "
        "Expected a convolutional backbone."
    )


def replace_head(
    model: keras.Model,
    num_classes: int,
    dropout: float = 0.0,
    hidden_units: Sequence[int] = (),
    pooling: str = "avg",
    classifier_activation: str | None = "softmax",
) -> keras.Model:
    """Replace a model's classifier with a fresh GAP + Dense(num_classes) head.

    The Keras form of PyTorch's ``model.fc = nn.Linear(model.fc.in_features, N)``: the
    backbone (every layer up to the last 4-D feature map) is kept with its weights,
    and whatever followed it (old pooling, old ``predictions``) is dropped.

    The backbone layers are *shared* with ``model`` (same variables, no copy);
    training the new model updates both. Use ``keras.models.clone_model`` first if
    you need the original untouched.

    Args:
        model: A kresnet model or a ``keras.applications`` ResNet (with or without top).
        num_classes: Classes of the new head.
        dropout: Dropout rate before the new Dense layer(s).
        hidden_units: Optional hidden fully connected layers, e.g. ``(256,)``.
        pooling: ``"avg"`` or ``"max"`` global pooling.
        classifier_activation: ``"softmax"`` or ``None`` (logits).

    Returns:
        A new functional ``keras.Model`` with the same input and name.

    Example:
        >>> base = keras.applications.ResNet50(weights=None)
        >>> model = replace_head(base, num_classes=5)
        >>> model.output.shape
        (None, 5)
    """
    validate_head_args(num_classes, pooling, dropout, hidden_units, classifier_activation)
    features = find_feature_layer(model).output
    outputs = classifier_head(features, num_classes, pooling, dropout, hidden_units, classifier_activation)
    return keras.Model(model.inputs, outputs, name=model.name)
