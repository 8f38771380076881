"""Data: sources (TFDS or image folders), tf.data pipelines, preprocessing and augmentation.

Example:
    >>> from keras_resnet.data import DataConfig, build_datasets
    >>> data = build_datasets(DataConfig(dataset="cifar10", data_dir="../shared/datasets/cifar10"))
    >>> data.class_names[:2], data.preprocessing["mode"]
"""

from keras_resnet.data.options import AugmentConfig, DataConfig, validate_data_config
from keras_resnet.data.pipeline import Datasets, build_datasets, inference_images, representative_images
from keras_resnet.data.preprocess import (
    decode_image,
    inference_preprocess,
    load_preprocessing,
    make_spec,
    normalize,
    resize_for_eval,
    save_preprocessing,
)
from keras_resnet.data.sources import BadImageError, DatasetUnavailableError

__all__ = [
    "AugmentConfig",
    "BadImageError",
    "DataConfig",
    "DatasetUnavailableError",
    "Datasets",
    "build_datasets",
    "decode_image",
    "inference_images",
    "inference_preprocess",
    "load_preprocessing",
    "make_spec",
    "normalize",
    "representative_images",
    "resize_for_eval",
    "save_preprocessing",
    "validate_data_config",
]
