"""The ``data:`` section of a training config, as dataclasses (data source, pipeline, augmentation).

Field types follow the config loader's rules (int, float, bool, str, ``X | None``,
tuples, ``Literal`` choices, nested dataclasses), so YAML is validated against the
type hints. Every field has a default; a YAML config sets only what differs.
(`keras_resnet.data.options` re-exports these names.)

Example:
    >>> from keras_resnet.config import DataConfig, AugmentConfig
    >>> cfg = DataConfig(dataset="cifar10", data_dir="../shared/datasets/cifar10",
    ...                  augment=AugmentConfig(mixup_alpha=0.2))
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from keras_resnet.config.choices import check_literals

CacheMode = Literal["memory", "disk", "none"]
NormalizationMode = Literal["dataset", "unit", "caffe", "tf", "torch"]
ClassBalance = Literal["none", "weights", "oversample"]
BadImagePolicy = Literal["skip", "error"]
CropMode = Literal["auto", "pad", "resized", "none"]
FlipMode = Literal["random", "alternate"]


@dataclass
class AugmentConfig:
    """Training-time augmentation (never applied to validation, test or inference).

    Attributes:
        enabled: Master switch; False turns every augmentation off.
        crop: "pad" = pad-and-random-crop (the CIFAR recipe), "resized" = random
            resized crop (Inception style, for larger images), "none", or "auto":
            "pad" for inputs up to 64x64, "resized" above.
        pad: Pixels of padding on each side for "pad" cropping.
        resized_scale: (min, max) area fraction of the crop for "resized" cropping.
        resized_ratio: (min, max) aspect ratio of the crop for "resized" cropping.
        horizontal_flip: Left-right flips, as ``flip_mode`` says.
        flip_mode: "random" = each image is mirrored with probability 0.5, drawn anew
            every epoch; "alternate" = each image's mirroring is drawn at random once
            and then switches every epoch, so every image is seen both ways in every
            two consecutive epochs (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds").
        rotation: Random rotation as a fraction of a full turn (0.05 = +-18 degrees,
            keras.layers.RandomRotation's factor); 0 disables.
        zoom: Random zoom fraction (keras.layers.RandomZoom's factor); 0 disables.
        erasing: Probability of random erasing (cutout) per image; 0 disables.
        erasing_scale: (min, max) area fraction of the erased rectangle.
        mixup_alpha: Beta(alpha, alpha) mixup of images and one-hot labels; 0 disables.
        cutmix_alpha: Beta(alpha, alpha) cutmix of images and labels; 0 disables.
            When both mixup and cutmix are on, each batch uses one of them at random.
    """

    enabled: bool = True
    crop: CropMode = "auto"
    pad: int = 4
    resized_scale: tuple[float, ...] = (0.08, 1.0)
    resized_ratio: tuple[float, ...] = (0.75, 1.3333)
    horizontal_flip: bool = True
    flip_mode: FlipMode = "random"
    rotation: float = 0.0
    zoom: float = 0.0
    erasing: float = 0.0
    erasing_scale: tuple[float, ...] = (0.02, 0.25)
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0


@dataclass
class DataConfig:
    """Where the data comes from and how the input pipeline treats it.

    Attributes:
        dataset: A TFDS name ("cifar10", "imagenette", ...) or None for a plain image
            folder given by ``data_dir``.
        data_dir: An image folder ``ROOT/<split>/<class>/<image>`` (splits train, test,
            val|validation; or ``ROOT/<class>/<image>`` as train only). With a
            dataset name it is read as a local copy of that dataset.
        tfds_data_dir: TFDS data directory (None = TFDS default, ~/tensorflow_datasets).
        download: Allow a TFDS download when nothing local is found.
        image_size: Model input side in pixels; None = the source's native size when
            it has one (TFDS feature shape, or the first image of a folder), else 224.
            The trainer normally sets it to the model's default size.
        batch_size: GLOBAL batch size (split over replicas by the strategy).
        validation_fraction: Stratified holdout of train used for validation when the
            source has no validation split (0 = no validation set).
        cache: Cache decoded, resized uint8 images in "memory", on "disk"
            (``cache_dir``), or "none".
        cache_dir: Directory for disk cache files (None = ``~/.cache/kresnet``).
        normalization: "dataset" (per-channel mean/std of train), "unit" ([0,1]),
            "caffe" (BGR mean subtraction, keras.applications ResNet v1), "tf"
            ([-1,1], ResNet v2), "torch" (ImageNet mean/std, torchvision).
        class_balance: "none", "weights" (per-example sample weights in the train
            dataset) or "oversample" (resample train to a uniform class mix).
        on_bad_image: "skip" undecodable files (count and paths logged) or "error"
            (stop, naming the file).
        deterministic: Fixed element order for parallel maps (slower; for
            reproducible runs).
        shuffle_buffer: Shuffle buffer size in images (None = whole train split).
        augment: Training-time augmentation options.
    """

    dataset: str | None = "cifar10"
    data_dir: str | None = None
    tfds_data_dir: str | None = None
    download: bool = True
    image_size: int | None = None
    batch_size: int = 128
    validation_fraction: float = 0.1
    cache: CacheMode = "memory"
    cache_dir: str | None = None
    normalization: NormalizationMode = "dataset"
    class_balance: ClassBalance = "none"
    on_bad_image: BadImagePolicy = "skip"
    deterministic: bool = False
    shuffle_buffer: int | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def replace(self, **changes) -> "DataConfig":
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


def validate_data_config(config: DataConfig) -> None:
    """Check value ranges the type hints cannot express, before TensorFlow starts.

    Args:
        config: The options to check.

    Raises:
        ValueError: naming the field, the value received and what was expected.
    """
    if not config.dataset and not config.data_dir:
        raise ValueError(
            "No data source: set data.dataset to a TFDS name (e.g. 'cifar10') or data.data_dir to an "
            f"image folder. Received: dataset={config.dataset!r}, data_dir={config.data_dir!r}"
        )
    if config.batch_size < 1:
        raise ValueError(f"data.batch_size must be >= 1. Received: batch_size={config.batch_size!r}")
    if config.image_size is not None and config.image_size < 8:
        raise ValueError(f"data.image_size must be >= 8 pixels or None. Received: image_size={config.image_size!r}")
    if not 0.0 <= config.validation_fraction < 1.0:
        raise ValueError(
            "data.validation_fraction must be in [0, 1). "
            f"Received: validation_fraction={config.validation_fraction!r}"
        )
    if config.shuffle_buffer is not None and config.shuffle_buffer < 1:
        raise ValueError(
            f"data.shuffle_buffer must be >= 1 or None. Received: shuffle_buffer={config.shuffle_buffer!r}"
        )
    check_literals(config, "data")
    aug = config.augment
    check_literals(aug, "data.augment")
    if aug.pad < 0:
        raise ValueError(f"data.augment.pad must be >= 0. Received: pad={aug.pad!r}")
    for name in ("resized_scale", "resized_ratio", "erasing_scale"):
        pair = tuple(getattr(aug, name))
        if len(pair) != 2 or not 0 < pair[0] <= pair[1]:
            raise ValueError(f"data.augment.{name} must be (min, max) with 0 < min <= max. Received: {name}={pair!r}")
    for name in ("rotation", "zoom", "mixup_alpha", "cutmix_alpha"):
        if getattr(aug, name) < 0:
            raise ValueError(f"data.augment.{name} must be >= 0. Received: {name}={getattr(aug, name)!r}")
    if not 0.0 <= aug.erasing <= 1.0:
        raise ValueError(f"data.augment.erasing is a probability in [0, 1]. Received: erasing={aug.erasing!r}")
