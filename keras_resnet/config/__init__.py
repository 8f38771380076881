"""The configuration layer: the schema (dataclasses), the strict YAML loader and the recipes.

It sits at the bottom of the package: nothing here imports TensorFlow, Keras or any
other part of ``keras_resnet`` (only `keras_resnet.runs`, for the atomic write of
`save_config`). Closed sets of values are ``Literal`` hints; `choices` reads them.

Example:
    >>> from keras_resnet.config import load_config, choices, StrategyName
    >>> load_config(overrides={"training.epochs": 2}).training.epochs
    2
    >>> choices(StrategyName)
    ('auto', 'default', 'mirrored', 'multi_worker', 'tpu')
"""

from keras_resnet.config.choices import (
    ExportFormat,
    PredictFormat,
    Quantization,
    SearchAlgorithm,
    check_literals,
    choices,
    literal_fields,
)
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
from keras_resnet.config.loader import (
    config_to_dict,
    config_to_yaml,
    load_config,
    parse_set_value,
    read_yaml,
    save_config,
    validate_config,
    with_overrides,
)
from keras_resnet.config.recipes import (
    CONFIGS_DIR,
    DEFAULT_RECIPES,
    configs_dir,
    default_recipe,
    find_recipe,
)
from keras_resnet.config.schema import (
    FREEZE_POLICIES,
    TTA,
    EvalSplit,
    EvaluateSplit,
    FinetuneConfig,
    FreezePolicy,
    ModelConfig,
    Monitor,
    OptimizerConfig,
    OptimizerName,
    Pooling,
    Precision,
    Progress,
    ScheduleConfig,
    ScheduleName,
    StemInit,
    StrategyName,
    TrainConfig,
    TrainingConfig,
    validate_finetune_config,
)

__all__ = [
    "CONFIGS_DIR",
    "DEFAULT_RECIPES",
    "FREEZE_POLICIES",
    "AugmentConfig",
    "BadImagePolicy",
    "CacheMode",
    "ClassBalance",
    "CropMode",
    "DataConfig",
    "EvalSplit",
    "EvaluateSplit",
    "ExportFormat",
    "FinetuneConfig",
    "FlipMode",
    "FreezePolicy",
    "ModelConfig",
    "Monitor",
    "NormalizationMode",
    "OptimizerConfig",
    "OptimizerName",
    "Pooling",
    "Precision",
    "PredictFormat",
    "Progress",
    "Quantization",
    "ScheduleConfig",
    "ScheduleName",
    "SearchAlgorithm",
    "StemInit",
    "StrategyName",
    "TTA",
    "TrainConfig",
    "TrainingConfig",
    "check_literals",
    "choices",
    "config_to_dict",
    "config_to_yaml",
    "configs_dir",
    "default_recipe",
    "find_recipe",
    "literal_fields",
    "load_config",
    "parse_set_value",
    "read_yaml",
    "save_config",
    "validate_config",
    "validate_data_config",
    "validate_finetune_config",
    "with_overrides",
]
