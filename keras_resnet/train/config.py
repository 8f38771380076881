"""The training config, as the trainer sees it: `keras_resnet.config` plus the model-table check.

The schema, the strict YAML loader and the recipes live in the config layer
(`keras_resnet.config`), which knows nothing of the models. This module re-exports
them, so ``from keras_resnet.train.config import load_config`` keeps working, and its
`load_config`, `with_overrides` and `validate_config` also check ``model.name`` /
``model.depth`` against the model table (`keras_resnet.models.specs.check_model_config`),
so a bad model name fails before any TensorFlow work.

Example:
    >>> config = load_config("configs/cifar10_resnet20.yaml", overrides={"training.epochs": 1})
    >>> load_config(set_values=["model.name=resnet7"])
    Traceback (most recent call last):
    ValueError: Invalid config value for model.name / model.depth: Unknown model name. Received: name='resnet7'...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keras_resnet import config as _config
from keras_resnet.config import (
    CONFIGS_DIR,
    DEFAULT_RECIPES,
    AugmentConfig,
    DataConfig,
    FinetuneConfig,
    ModelConfig,
    OptimizerConfig,
    ScheduleConfig,
    TrainConfig,
    TrainingConfig,
    config_to_dict,
    config_to_yaml,
    configs_dir,
    default_recipe,
    find_recipe,
    parse_set_value,
    read_yaml,
    save_config,
)

__all__ = [
    "CONFIGS_DIR",
    "DEFAULT_RECIPES",
    "AugmentConfig",
    "DataConfig",
    "FinetuneConfig",
    "ModelConfig",
    "OptimizerConfig",
    "ScheduleConfig",
    "TrainConfig",
    "TrainingConfig",
    "config_to_dict",
    "config_to_yaml",
    "configs_dir",
    "default_recipe",
    "find_recipe",
    "load_config",
    "parse_set_value",
    "read_yaml",
    "save_config",
    "validate_config",
    "with_overrides",
]


def validate_config(config: TrainConfig) -> None:
    """`keras_resnet.config.validate_config`, then the model name and depth against the model table.

    Raises:
        ValueError: naming the dotted key, its value and what is expected.
    """
    from keras_resnet.models.specs import check_model_config

    _config.validate_config(config)
    check_model_config(config.model)


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    set_values: list[str] | tuple[str, ...] = (),
) -> TrainConfig:
    """`keras_resnet.config.load_config` (defaults -> YAML -> ``overrides`` -> ``set_values``), model checked too."""
    config = _config.load_config(path, overrides=overrides, set_values=set_values)
    validate_config(config)
    return config


def with_overrides(config: TrainConfig, overrides: dict[str, Any], source: str = "overrides") -> TrainConfig:
    """`keras_resnet.config.with_overrides`, model checked too."""
    config = _config.with_overrides(config, overrides, source=source)
    validate_config(config)
    return config
