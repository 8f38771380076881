"""Residual blocks and stems as plain functions over Keras tensors.

Every layer gets a fixed name (``conv3_block1_2_conv`` ...) so weights load by name,
freezing works by stage prefix and the graph is plain Keras layers: no custom objects
are needed to reload or export a model.

Two styles, chosen by the spec row:

* ``"keras"``: the keras.applications layer configuration (convolution biases,
  BatchNorm epsilon 1.001e-5, Keras default initialisers and BN momentum).
* ``"torch"``: torchvision's structure (no convolution biases, BatchNorm epsilon 1e-5
  and momentum 0.9, i.e. torch's 0.1, He-normal initialisation, symmetric explicit
  padding for strided convolutions so converted checkpoints give identical outputs).
"""

from __future__ import annotations

from keras import layers

from keras_resnet.models.naming import STEM_CONV

#: Shortcut kinds a block accepts.
IDENTITY = "identity"
PROJECTION = "projection"  # 1x1 convolution (+ BatchNorm in v1)
ZERO_PAD = "zero_pad"  # option A: stride-2 subsample, channels doubled with zeros


def _batch_norm(style: str, name: str) -> layers.BatchNormalization:
    if style == "keras":
        return layers.BatchNormalization(axis=3, epsilon=1.001e-5, name=name)
    return layers.BatchNormalization(axis=-1, epsilon=1e-5, momentum=0.9, name=name)


def _conv(style: str, filters: int, kernel_size: int, strides: int = 1, padding="valid", name=None):
    if style == "keras":
        return layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, name=name)
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer="he_normal",
        name=name,
    )


def conv3x3(x, filters: int, stride: int, style: str, name: str):
    """A 3x3 convolution with torch-style symmetric padding.

    Stride 1 uses ``padding="same"`` (pads 1 on each side); stride 2 pads explicitly
    with a ``{name}_pad`` layer because Keras' ``"same"`` pads asymmetrically there.

    Args:
        x: Input tensor (NHWC).
        filters: Output channels.
        stride: 1 or 2.
        style: ``"keras"`` or ``"torch"``.
        name: Name prefix; the convolution is ``{name}_conv``.

    Returns:
        The convolution's output tensor.
    """
    if stride == 1:
        return _conv(style, filters, 3, padding="same", name=f"{name}_conv")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name=f"{name}_pad")(x)
    return _conv(style, filters, 3, strides=stride, name=f"{name}_conv")(x)


def _zero_pad_shortcut(x, filters: int, stride: int, name: str):
    """Option A: subsample by ``stride`` and append zero channels up to ``filters``."""
    if stride > 1:
        x = layers.MaxPooling2D(1, strides=stride, name=f"{name}_0_pool")(x)
    extra = filters - x.shape[-1]
    if extra <= 0:
        return x
    if extra != x.shape[-1]:
        raise ValueError(
            f"Option-A shortcut in {name} can only double the channels. "
            f"Received: {x.shape[-1]} -> {filters}"
        )
    zeros = layers.Rescaling(0.0, name=f"{name}_0_zeros")(x)
    return layers.Concatenate(axis=-1, name=f"{name}_0_pad")([x, zeros])


def basic_block_v1(x, filters: int, stride: int, shortcut: str, style: str, name: str):
    """Post-activation basic block: 3x3 conv-BN-ReLU, 3x3 conv-BN, add, ReLU.

    Args:
        x: Input tensor.
        filters: Output channels of both convolutions.
        stride: Stride of the first convolution (and of the shortcut).
        shortcut: ``"identity"``, ``"projection"`` or ``"zero_pad"``.
        style: ``"keras"`` or ``"torch"``.
        name: Block name, e.g. ``"conv3_block1"``.

    Returns:
        The block's output tensor (``{name}_out``).
    """
    if shortcut == PROJECTION:
        residual = _conv(style, filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        residual = _batch_norm(style, f"{name}_0_bn")(residual)
    elif shortcut == ZERO_PAD:
        residual = _zero_pad_shortcut(x, filters, stride, name)
    else:
        residual = x
    y = conv3x3(x, filters, stride, style, f"{name}_1")
    y = _batch_norm(style, f"{name}_1_bn")(y)
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = conv3x3(y, filters, 1, style, f"{name}_2")
    y = _batch_norm(style, f"{name}_2_bn")(y)
    y = layers.Add(name=f"{name}_add")([residual, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def basic_block_v2(x, filters: int, stride: int, shortcut: str, style: str, name: str):
    """Pre-activation basic block (He et al. 2016): BN-ReLU-conv twice, then add.

    Args:
        x: Input tensor.
        filters: Output channels.
        stride: Stride of the first convolution (and of the shortcut).
        shortcut: ``"identity"``, ``"projection"`` (from the pre-activation) or
            ``"zero_pad"`` (from the block input).
        style: ``"keras"`` or ``"torch"``.
        name: Block name.

    Returns:
        The block's output tensor (``{name}_out``).
    """
    preact = _batch_norm(style, f"{name}_preact_bn")(x)
    preact = layers.Activation("relu", name=f"{name}_preact_relu")(preact)
    if shortcut == PROJECTION:
        residual = _conv(style, filters, 1, strides=stride, name=f"{name}_0_conv")(preact)
    elif shortcut == ZERO_PAD:
        residual = _zero_pad_shortcut(x, filters, stride, name)
    else:
        residual = x
    y = conv3x3(preact, filters, stride, style, f"{name}_1")
    y = _batch_norm(style, f"{name}_1_bn")(y)
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = conv3x3(y, filters, 1, style, f"{name}_2")
    return layers.Add(name=f"{name}_out")([residual, y])


def bottleneck_block_v1(x, filters: int, stride: int, shortcut: str, style: str, name: str):
    """keras.applications' ResNet v1 bottleneck (stride on the first 1x1 conv).

    Args:
        x: Input tensor.
        filters: Bottleneck width; the block outputs ``4 * filters`` channels.
        stride: Stride of the first 1x1 convolution and of the shortcut.
        shortcut: ``"projection"`` or ``"identity"``.
        style: ``"keras"`` or ``"torch"``.
        name: Block name.

    Returns:
        The block's output tensor (``{name}_out``).
    """
    if shortcut == PROJECTION:
        residual = _conv(style, 4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        residual = _batch_norm(style, f"{name}_0_bn")(residual)
    else:
        residual = x
    y = _conv(style, filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    y = _batch_norm(style, f"{name}_1_bn")(y)
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = _conv(style, filters, 3, padding="same", name=f"{name}_2_conv")(y)
    y = _batch_norm(style, f"{name}_2_bn")(y)
    y = layers.Activation("relu", name=f"{name}_2_relu")(y)
    y = _conv(style, 4 * filters, 1, name=f"{name}_3_conv")(y)
    y = _batch_norm(style, f"{name}_3_bn")(y)
    y = layers.Add(name=f"{name}_add")([residual, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def bottleneck_block_v2(x, filters: int, stride: int, shortcut: str, style: str, name: str):
    """keras.applications' ResNet v2 (pre-activation) bottleneck.

    The 1x1 convolutions keep their biases, the 3x3 and first 1x1 have none, exactly
    as keras.applications; a strided identity shortcut is a 1x1 max-pool.

    Args:
        x: Input tensor.
        filters: Bottleneck width; the block outputs ``4 * filters`` channels.
        stride: Stride of the 3x3 convolution and of the shortcut.
        shortcut: ``"projection"`` or ``"identity"``.
        style: ``"keras"`` or ``"torch"``.
        name: Block name.

    Returns:
        The block's output tensor (``{name}_out``).
    """
    preact = _batch_norm(style, f"{name}_preact_bn")(x)
    preact = layers.Activation("relu", name=f"{name}_preact_relu")(preact)
    if shortcut == PROJECTION:
        residual = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(preact)
    elif stride > 1:
        residual = layers.MaxPooling2D(1, strides=stride, name=f"{name}_0_pool")(x)
    else:
        residual = x
    y = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_1_conv")(preact)
    y = _batch_norm(style, f"{name}_1_bn")(y)
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name=f"{name}_2_pad")(y)
    y = layers.Conv2D(filters, 3, strides=stride, use_bias=False, name=f"{name}_2_conv")(y)
    y = _batch_norm(style, f"{name}_2_bn")(y)
    y = layers.Activation("relu", name=f"{name}_2_relu")(y)
    y = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(y)
    return layers.Add(name=f"{name}_out")([residual, y])


BLOCKS = {
    ("basic", False): basic_block_v1,
    ("basic", True): basic_block_v2,
    ("bottleneck", False): bottleneck_block_v1,
    ("bottleneck", True): bottleneck_block_v2,
}


def imagenet_stem(x, preact: bool, style: str):
    """7x7/2 convolution (+ BN-ReLU in v1) and 3x3/2 max-pool, keras.applications names.

    Args:
        x: Input image tensor.
        preact: v2 models leave BN-ReLU to the first block's pre-activation.
        style: ``"keras"`` or ``"torch"``.

    Returns:
        The stem's output tensor (``pool1_pool``).
    """
    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(x)
    x = _conv(style, 64, 7, strides=2, name=STEM_CONV)(x)
    if not preact:
        x = _batch_norm(style, "conv1_bn")(x)
        x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad")(x)
    return layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)


def cifar_stem(x, filters: int, preact: bool, style: str):
    """3x3/1 convolution (+ BN-ReLU in v1), He et al. 2015 section 4.2.

    Args:
        x: Input image tensor.
        filters: Output channels (16 in the paper).
        preact: v2 models leave BN-ReLU to the first block.
        style: ``"keras"`` or ``"torch"``.

    Returns:
        The stem's output tensor.
    """
    x = _conv(style, filters, 3, padding="same", name=STEM_CONV)(x)
    if preact:
        return x
    x = _batch_norm(style, "conv1_bn")(x)
    return layers.Activation("relu", name="conv1_relu")(x)


def post_activation(x, style: str):
    """Final BN-ReLU of a pre-activation network (``post_bn``, ``post_relu``)."""
    x = _batch_norm(style, "post_bn")(x)
    return layers.Activation("relu", name="post_relu")(x)

