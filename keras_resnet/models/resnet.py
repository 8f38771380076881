"""`build_resnet`: one builder over the spec table in `specs.py`."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_resnet.models import blocks
from keras_resnet.models.heads import classifier_head, global_pool, validate_head_args
from keras_resnet.models.specs import BOTTLENECK, CIFAR_STEM, ResNetSpec, get_spec


def _validate_input_shape(spec: ResNetSpec, input_shape) -> tuple:
    if input_shape is None:
        return spec.default_input_shape
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(
            f"input_shape must be (height, width, channels). Received: input_shape={input_shape!r}"
        )
    height, width, channels = shape
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"input_shape channels must be a positive integer. Received: input_shape={input_shape!r}")
    for side in (height, width):
        if side is not None and (not isinstance(side, int) or side < spec.min_size):
            raise ValueError(
                f"Input too small for {spec.name}: height and width must be at least {spec.min_size} "
                f"(or None). Received: input_shape={input_shape!r}"
            )
    return shape


def _shortcut_kind(spec: ResNetSpec, block: int, in_channels: int, out_channels: int, stride: int) -> str:
    if spec.block == BOTTLENECK:
        # keras.applications: a projection in every stage's first block, even stage 1.
        return blocks.PROJECTION if block == 0 else blocks.IDENTITY
    if stride == 1 and in_channels == out_channels:
        return blocks.IDENTITY
    return blocks.ZERO_PAD if spec.stem == CIFAR_STEM else blocks.PROJECTION


def backbone(inputs, spec: ResNetSpec, width_multiplier: float = 1.0):
    """Stem and residual stages of ``spec`` on ``inputs``; returns the last feature map.

    Args:
        inputs: The image input tensor.
        spec: A row of the model table.
        width_multiplier: Scales every stage's filters (tests use tiny widths).

    Returns:
        The 4-D output tensor of the last stage (after ``post_relu`` in v2 models).
    """
    filters = [max(1, int(round(f * width_multiplier))) for f in spec.filters]
    if spec.stem == CIFAR_STEM:
        x = blocks.cifar_stem(inputs, filters[0], spec.preact, spec.style)
    else:
        x = blocks.imagenet_stem(inputs, spec.preact, spec.style)
    block_fn = blocks.BLOCKS[(spec.block, spec.preact)]
    expansion = 4 if spec.block == BOTTLENECK else 1
    channels = x.shape[-1]
    for stage, (num_blocks, stage_filters) in enumerate(zip(spec.blocks_per_stage, filters)):
        stage_stride = 1 if stage == 0 else 2
        stride_block = 0 if spec.downsample_at == "first" else num_blocks - 1
        if spec.downsample_at == "last":
            # keras.applications v2: conv2..conv4 stride in their last block, conv5 none.
            stage_stride = 2 if stage < spec.num_stages - 1 else 1
        for block in range(num_blocks):
            stride = stage_stride if block == stride_block else 1
            out_channels = stage_filters * expansion
            shortcut = _shortcut_kind(spec, block, channels, out_channels, stride)
            name = f"{spec.stage_names[stage]}_block{block + 1}"
            x = block_fn(x, stage_filters, stride, shortcut, spec.style, name)
            channels = out_channels
    if spec.preact:
        x = blocks.post_activation(x, spec.style)
    return x


def default_preprocessing_mode(spec: ResNetSpec) -> str:
    """The normalisation the family's pretrained weights expect (see `build_resnet`)."""
    if spec.stem == CIFAR_STEM:
        return "unit"
    if spec.style == "torch":
        return "torch"
    return "tf" if spec.preact else "caffe"


def build_resnet(
    name: str,
    num_classes: int = 1000,
    input_shape: Sequence | None = None,
    weights: str | None = None,
    include_top: bool = True,
    pooling: str | None = "avg",
    dropout: float = 0.0,
    classifier_activation: str | None = "softmax",
    hidden_units: Sequence[int] = (),
    depth: int | None = None,
    width_multiplier: float = 1.0,
    include_preprocessing: bool = False,
    preprocessing: str | dict | None = None,
) -> keras.Model:
    """Build a ResNet as a functional ``keras.Model``.

    Args:
        name: A name from `list_models()` (``"resnet50"``, ``"resnet20"``,
            ``"resnet18_v2"`` ...), or ``"resnet_cifar"`` / ``"resnet_cifar_v2"`` with
            ``depth``.
        num_classes: Classes of the classifier head (``include_top=True``).
        input_shape: ``(height, width, channels)``; default 224x224x3 for ImageNet
            ResNets and 32x32x3 for CIFAR ResNets. Height/width may be None.
        weights: None (random), ``"imagenet"``, or a path to a ``.weights.h5`` /
            ``.keras`` file or a run directory (layers are matched by name; see
            `keras_resnet.models.weights`).
        include_top: Add the GAP + Dense classifier head.
        pooling: Global pooling: ``"avg"`` or ``"max"``; with ``include_top=False``
            also None for the raw 4-D feature map.
        dropout: Dropout rate in the head.
        classifier_activation: ``"softmax"`` or None (logits), ``"sigmoid"``.
        hidden_units: Optional hidden Dense layers in the head.
        depth: Depth of a custom CIFAR ResNet (``6n+2``).
        width_multiplier: Scale all widths (for small experiments; 1.0 = the paper).
        include_preprocessing: Normalise inside the model: it then takes raw RGB
            pixels (uint8 or 0..255 floats), as keras.applications' ConvNeXt does.
            The layer is ``preprocessing`` (see `keras_resnet.preprocessing`);
            backbone layer names are unchanged, so weights still load by name.
        preprocessing: With ``include_preprocessing``: a mode name ("unit", "tf",
            "torch", "caffe") or a spec dict (mode "dataset" needs one). Default:
            what the family's ImageNet weights expect ("caffe" for ResNet v1
            50/101/152, "tf" for their v2, "torch" for ResNet-18/34) and "unit" for
            the CIFAR ResNets.

    Returns:
        A functional ``keras.Model`` named ``name``; head layers ``avg_pool`` +
        ``predictions``; first layer ``preprocessing`` with ``include_preprocessing``.

    Raises:
        ValueError: for an unknown name, bad depth, too small an input, bad head
            arguments or ``num_classes < 1``, naming the value received.

    Example:
        >>> model = build_resnet("resnet20", num_classes=10)
        >>> model.output.shape
        (None, 10)
        >>> raw = build_resnet("resnet50", weights="imagenet", include_preprocessing=True)
        >>> raw.predict(uint8_images)   # no preprocess_input needed
    """
    spec = get_spec(name, depth)
    shape = _validate_input_shape(spec, input_shape)
    validate_head_args(num_classes, pooling, dropout, hidden_units, classifier_activation, include_top)
    if not isinstance(width_multiplier, (int, float)) or width_multiplier <= 0:
        raise ValueError(f"width_multiplier must be > 0. Received: width_multiplier={width_multiplier!r}")
    if weights == "imagenet" and width_multiplier != 1.0:
        raise ValueError(
            f"ImageNet weights need the full width. Received: width_multiplier={width_multiplier!r}, "
            f"weights={weights!r}"
        )

    if preprocessing is not None and not include_preprocessing:
        raise ValueError(
            f"preprocessing is only used with include_preprocessing=True. Received: preprocessing={preprocessing!r}, "
            "include_preprocessing=False"
        )
    inputs = keras.Input(shape=shape, name="image")
    x = inputs
    if include_preprocessing:
        from keras_resnet.preprocessing import add_preprocessing, resolve_spec

        size = shape[:2] if shape[0] and shape[1] else spec.default_input_shape[:2]
        x = add_preprocessing(x, resolve_spec(preprocessing or default_preprocessing_mode(spec), size))
    features = backbone(x, spec, width_multiplier)
    if include_top:
        outputs = classifier_head(features, num_classes, pooling, dropout, hidden_units, classifier_activation)
    else:
        outputs = global_pool(features, pooling)
    model = keras.Model(inputs, outputs, name=spec.name)
    if weights is not None:
        from keras_resnet.models.weights import load_pretrained

        load_pretrained(model, spec, weights, include_top=include_top)
    return model

