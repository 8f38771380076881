"""The table of ResNet variants: one row per named model, read by `build_resnet`.

Conventions pinned here (and in `tests/models/test_specs.py`):

* ``imagenet`` stem: 7x7/2 conv, BatchNorm, ReLU, 3x3/2 max-pool; four stages named
  ``conv2`` .. ``conv5`` (stage 1 .. 4), as in keras.applications and the paper.
* ``cifar`` stem: 3x3/1 conv with 16 filters; three stages ``conv2`` .. ``conv4`` of
  16/32/64 filters, ``n`` basic blocks each (depth ``6n+2``, He et al. 2015 section 4.2).
* ``keras`` style (ResNet-50/101/152, v1 and v2): layer for layer keras.applications,
  convolution biases included, BatchNorm epsilon 1.001e-5, so the official weight
  files load by name.
* ``torch`` style (ResNet-18/34): torchvision's structure, no convolution biases,
  BatchNorm epsilon 1e-5 and explicit symmetric padding, so torchvision/timm
  checkpoints convert.
* CIFAR ResNets use the paper's **option A** shortcut: parameter-free, a stride-2
  subsample concatenated with zeros when the width doubles.

``params`` is Keras' ``count_params()`` of the model built with its default input
and a 1000-class top (BatchNorm moving statistics included); ``trainable`` the
trainable share. Tests rebuild every row and compare, so `kresnet models` can print
the table without building anything.
"""

from __future__ import annotations

import dataclasses

from keras_resnet.models.naming import stage_prefix

IMAGENET_STEM = "imagenet"
CIFAR_STEM = "cifar"
BASIC = "basic"
BOTTLENECK = "bottleneck"


@dataclasses.dataclass(frozen=True)
class ResNetSpec:
    """One row of the model table.

    Attributes:
        name: Public model name, e.g. ``"resnet50"``.
        depth: Number of weighted layers in the paper's sense (18, 50, 20, ...).
        block: ``"basic"`` (two 3x3 convs) or ``"bottleneck"`` (1x1-3x3-1x1).
        preact: True for pre-activation (v2) blocks.
        stem: ``"imagenet"`` or ``"cifar"``.
        blocks_per_stage: Residual blocks in each stage.
        filters: Base filters of each stage (bottleneck output is 4x this).
        style: ``"keras"`` (keras.applications layer config) or ``"torch"``
            (torchvision structure: no conv bias, BN eps 1e-5).
        downsample_at: ``"first"`` or ``"last"`` block of a stage carries the stride
            (keras.applications v2 puts it in the last block).
        default_size: Default input height and width.
        min_size: Smallest accepted input height/width.
        params: Keras ``count_params()`` with a 1000-class top at the default size.
        trainable: Trainable parameters of the same model.
    """

    name: str
    depth: int
    block: str
    preact: bool
    stem: str
    blocks_per_stage: tuple[int, ...]
    filters: tuple[int, ...]
    style: str
    downsample_at: str
    default_size: int
    min_size: int
    params: int | None = None
    trainable: int | None = None

    @property
    def num_stages(self) -> int:
        """Number of residual stages (4 for ImageNet ResNets, 3 for CIFAR)."""
        return len(self.blocks_per_stage)

    @property
    def stage_names(self) -> tuple[str, ...]:
        """Layer-name prefixes of the stages: ``conv2``, ``conv3``, ... (`naming.stage_prefix`)."""
        return tuple(stage_prefix(stage) for stage in range(1, self.num_stages + 1))

    @property
    def default_input_shape(self) -> tuple[int, int, int]:
        """Default ``(height, width, channels)``."""
        return (self.default_size, self.default_size, 3)

    @property
    def display_block(self) -> str:
        """Human-readable block type, e.g. ``"bottleneck v2"``."""
        return f"{self.block} {'v2' if self.preact else 'v1'}"

    @property
    def feature_width(self) -> int:
        """Channels entering the classifier: the last stage's filters (times 4 for bottlenecks)."""
        return self.filters[-1] * (4 if self.block == BOTTLENECK else 1)

    @property
    def default_num_classes(self) -> int:
        """The head a user expects to see counted: 1000 (ImageNet) or 10 (CIFAR-10)."""
        return 10 if self.stem == CIFAR_STEM else 1000

    def param_counts(self, num_classes: int) -> tuple[int, int]:
        """``(params, trainable)`` with a ``num_classes`` head, from the pinned 1000-class counts.

        The head is global average pooling and one Dense layer, so only its
        ``(feature_width + 1) * num_classes`` weights change with the class count.

        Args:
            num_classes: Classes of the head (>= 1).

        Returns:
            Keras ``count_params()`` of the whole model and its trainable share.

        Raises:
            ValueError: a spec without pinned counts, or ``num_classes`` < 1.

        Example:
            >>> get_spec("resnet20").param_counts(10)[1]
            269722
        """
        if self.params is None or self.trainable is None:
            raise ValueError(f"{self.name} has no pinned parameter counts. Received: params={self.params}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1. Received: num_classes={num_classes!r}")
        change = (self.feature_width + 1) * (num_classes - 1000)
        return self.params + change, self.trainable + change


def _imagenet(name, depth, block, preact, blocks, params, trainable, style, downsample_at):
    filters = (64, 128, 256, 512)
    return ResNetSpec(
        name=name,
        depth=depth,
        block=block,
        preact=preact,
        stem=IMAGENET_STEM,
        blocks_per_stage=blocks,
        filters=filters,
        style=style,
        downsample_at=downsample_at,
        default_size=224,
        min_size=32,
        params=params,
        trainable=trainable,
    )


def cifar_spec(depth: int, preact: bool = False, params=None, trainable=None) -> ResNetSpec:
    """The spec of a CIFAR ResNet of any valid depth ``6n+2``.

    Args:
        depth: Total depth; must be ``6n+2`` with ``n >= 1`` (20, 32, 44, 56, 110, 1202...).
        preact: Pre-activation (v2) blocks when True.

    Returns:
        A `ResNetSpec` named ``resnet{depth}`` (``_v2`` suffix when ``preact``).

    Raises:
        ValueError: if ``depth`` is not of the form ``6n+2``.

    Example:
        >>> cifar_spec(20).blocks_per_stage
        (3, 3, 3)
    """
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            "A CIFAR ResNet's depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...). "
            f"Received: depth={depth!r}"
        )
    n = (depth - 2) // 6
    return ResNetSpec(
        name=f"resnet{depth}{'_v2' if preact else ''}",
        depth=depth,
        block=BASIC,
        preact=preact,
        stem=CIFAR_STEM,
        blocks_per_stage=(n, n, n),
        filters=(16, 32, 64),
        style="torch",
        downsample_at="first",
        default_size=32,
        min_size=8,
        params=params,
        trainable=trainable,
    )


_SPECS = (
    # torchvision-structured basic-block ResNets.
    _imagenet("resnet18", 18, BASIC, False, (2, 2, 2, 2), 11_699_112, 11_689_512, "torch", "first"),
    _imagenet("resnet34", 34, BASIC, False, (3, 4, 6, 3), 21_814_696, 21_797_672, "torch", "first"),
    # keras.applications-identical bottleneck ResNets.
    _imagenet("resnet50", 50, BOTTLENECK, False, (3, 4, 6, 3), 25_636_712, 25_583_592, "keras", "first"),
    _imagenet("resnet101", 101, BOTTLENECK, False, (3, 4, 23, 3), 44_707_176, 44_601_832, "keras", "first"),
    _imagenet("resnet152", 152, BOTTLENECK, False, (3, 8, 36, 3), 60_419_944, 60_268_520, "keras", "first"),
    _imagenet("resnet18_v2", 18, BASIC, True, (2, 2, 2, 2), 11_695_528, 11_687_720, "torch", "first"),
    _imagenet("resnet34_v2", 34, BASIC, True, (3, 4, 6, 3), 21_811_112, 21_795_880, "torch", "first"),
    _imagenet("resnet50_v2", 50, BOTTLENECK, True, (3, 4, 6, 3), 25_613_800, 25_568_360, "keras", "last"),
    _imagenet("resnet101_v2", 101, BOTTLENECK, True, (3, 4, 23, 3), 44_675_560, 44_577_896, "keras", "last"),
    _imagenet("resnet152_v2", 152, BOTTLENECK, True, (3, 8, 36, 3), 60_380_648, 60_236_904, "keras", "last"),
    # CIFAR ResNets, option A shortcuts. Counts are with a 1000-class top like every row;
    # with CIFAR-10's 10 classes ResNet-20 has 269,722 trainable parameters (the paper's 0.27M).
    cifar_spec(20, False, 335_448, 334_072),
    cifar_spec(32, False, 530_776, 528_504),
    cifar_spec(44, False, 726_104, 722_936),
    cifar_spec(56, False, 921_432, 917_368),
    cifar_spec(110, False, 1_800_408, 1_792_312),
    cifar_spec(20, True, 335_448, 334_072),
    cifar_spec(32, True, 530_776, 528_504),
    cifar_spec(44, True, 726_104, 722_936),
    cifar_spec(56, True, 921_432, 917_368),
    cifar_spec(110, True, 1_800_408, 1_792_312),
)

SPECS: dict[str, ResNetSpec] = {spec.name: spec for spec in _SPECS}

#: Names accepted by ``build_resnet`` for a CIFAR ResNet of custom depth (``depth=`` required).
CUSTOM_CIFAR_NAMES = {"resnet_cifar": False, "resnet_cifar_v2": True}


def list_models() -> list[str]:
    """Names of every built-in ResNet variant, in table order.

    Returns:
        A list such as ``["resnet18", "resnet34", ..., "resnet110_v2"]``.

    Example:
        >>> "resnet50" in list_models()
        True
    """
    return list(SPECS)


def get_spec(name: str, depth: int | None = None) -> ResNetSpec:
    """Look up a model's spec by name.

    Args:
        name: A name from `list_models()`, or ``"resnet_cifar"`` / ``"resnet_cifar_v2"``
            together with ``depth``.
        depth: Depth of a custom CIFAR ResNet; must be ``6n+2``.

    Returns:
        The `ResNetSpec`.

    Raises:
        ValueError: unknown name (the message lists the known ones), a ``depth`` given
            for a fixed-depth model, or an invalid CIFAR depth.
    """
    if name in CUSTOM_CIFAR_NAMES:
        if depth is None:
            raise ValueError(
                f"Model {name!r} needs a depth of the form 6n+2, e.g. depth=26. Received: depth=None"
            )
        return cifar_spec(depth, preact=CUSTOM_CIFAR_NAMES[name])
    if name not in SPECS:
        raise ValueError(
            f"Unknown model name. Received: name={name!r}. Expected one of: "
            f"{', '.join(list_models() + list(CUSTOM_CIFAR_NAMES))}"
        )
    spec = SPECS[name]
    if depth is not None and depth != spec.depth:
        raise ValueError(
            f"Model {name!r} has a fixed depth of {spec.depth}; use 'resnet_cifar' for a custom "
            f"CIFAR depth. Received: depth={depth!r}"
        )
    return spec


def check_model_config(model_config) -> ResNetSpec:
    """The spec named by a config's ``model:`` section, or an error naming the config keys.

    The config layer checks types and ranges but not the model table; this is the
    check `keras_resnet.train.config.validate_config` adds.

    Args:
        model_config: A `keras_resnet.config.ModelConfig` (reads ``name`` and ``depth``).

    Returns:
        The `ResNetSpec`.

    Raises:
        ValueError: ``"Invalid config value for model.name / model.depth: ..."`` with
            `get_spec`'s message (the known names, or the depth rule).
    """
    try:
        return get_spec(model_config.name, model_config.depth)
    except ValueError as error:
        raise ValueError(f"Invalid config value for model.name / model.depth: {error}") from None
