"""Data options: the ``data:`` section of a training config.

They live in the config layer now (`keras_resnet.config.data`); this module re-exports
them so ``from keras_resnet.data.options import DataConfig`` keeps working.
"""

from keras_resnet.config.data import (
    AugmentConfig,
    BadImagePolicy,
    CacheMode,
    ClassBalance,
    CropMode,
    DataConfig,
    FlipMode,
    NormalizationMode,
    validate_data_config,
)

__all__ = [
    "AugmentConfig",
    "BadImagePolicy",
    "CacheMode",
    "ClassBalance",
    "CropMode",
    "DataConfig",
    "FlipMode",
    "NormalizationMode",
    "validate_data_config",
]
