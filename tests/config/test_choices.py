"""Allowed values are written once, as Literal hints; the CLI, the validation and the implementations follow them."""

import dataclasses
from typing import Literal

import pytest

from keras_resnet import config as cfg
from keras_resnet.cli import main


def option_choices(command_path, option_name):
    command = main
    for name in command_path:
        command = command.commands[name]
    [param] = [p for p in command.params if p.name == option_name]
    return tuple(param.type.choices)


@pytest.mark.parametrize(
    "command, option, literal",
    [
        (["train"], "strategy", cfg.StrategyName),
        (["train"], "precision", cfg.Precision),
        (["evaluate"], "split", cfg.EvalSplit),
        (["export"], "fmt", cfg.ExportFormat),
        (["export"], "quantize", cfg.Quantization),
        (["predict"], "fmt", cfg.PredictFormat),
        (["tune"], "algorithm", cfg.SearchAlgorithm),
        (["evaluate"], "tta", cfg.TTA),
    ],
)
def test_cli_choices_are_the_literal_values(command, option, literal):
    assert option_choices(command, option) == cfg.choices(literal)


def test_schema_fields_use_the_named_literals():
    assert cfg.literal_fields(cfg.TrainingConfig) == {
        "precision": cfg.choices(cfg.Precision),
        "strategy": cfg.choices(cfg.StrategyName),
        "monitor": cfg.choices(cfg.Monitor),
        "progress": cfg.choices(cfg.Progress),
        "evaluate_split": (*cfg.choices(cfg.EvalSplit), "none"),
        "tta": cfg.choices(cfg.TTA),
    }
    assert cfg.literal_fields(cfg.FinetuneConfig) == {"freeze": cfg.FREEZE_POLICIES, "unfreeze": cfg.FREEZE_POLICIES}
    assert cfg.literal_fields(cfg.ModelConfig) == {"pooling": ("avg", "max"),
                                                   "stem_init": ("random", "whitening", "whitening_frozen")}


def test_implementations_accept_exactly_the_literal_values():
    """Modules that keep their own tuple (they are not in the config layer) must not drift from the Literal."""
    from keras_resnet import preprocessing, tune
    from keras_resnet.export import exporter, predict, tflite
    from keras_resnet.models.naming import POOLING_LAYER_NAMES
    from keras_resnet.train import schedules

    assert tuple(exporter.FORMATS) == cfg.choices(cfg.ExportFormat)
    assert tuple(tflite.QUANTIZATIONS) == cfg.choices(cfg.Quantization)
    assert tuple(predict.OUTPUT_FORMATS) == cfg.choices(cfg.PredictFormat)
    assert tuple(tune.ALGORITHMS) == cfg.choices(cfg.SearchAlgorithm)
    assert set(schedules.DECAYS) == set(cfg.choices(cfg.ScheduleName))
    assert tuple(preprocessing.MODES) == cfg.choices(cfg.NormalizationMode)
    assert tuple(POOLING_LAYER_NAMES) == cfg.choices(cfg.Pooling)


def test_choices_reads_literals_optional_literals_and_nested_literals():
    assert cfg.choices(Literal["a", "b"]) == ("a", "b")
    assert cfg.choices(Literal["a"] | None) == ("a",)
    assert cfg.choices(cfg.EvaluateSplit) == ("test", "val", "none")
    with pytest.raises(TypeError, match="Literal"):
        cfg.choices(str)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: cfg.validate_data_config(cfg.DataConfig(cache="gpu")),
         "data.cache must be one of ('memory', 'disk', 'none')"),
        (lambda: cfg.validate_data_config(cfg.DataConfig(augment=cfg.AugmentConfig(crop="center"))),
         "data.augment.crop must be one of ('auto', 'pad', 'resized', 'none'). Received: crop='center'"),
        (lambda: cfg.FinetuneConfig(unfreeze="stage9"), "finetune.unfreeze must be one of ('none', 'head_only'"),
        (lambda: cfg.validate_config(dataclasses.replace(cfg.TrainConfig(),
                                                         training=cfg.TrainingConfig(strategy="horovod"))),
         "training.strategy must be one of ('auto', 'default', 'mirrored', 'multi_worker', 'tpu')"),
        (lambda: cfg.validate_config(dataclasses.replace(cfg.TrainConfig(),
                                                         optimizer=cfg.OptimizerConfig(name="lamb"))),
         "optimizer.name must be one of ('sgd', 'adamw'). Received: name='lamb'"),
    ],
)
def test_values_built_in_code_are_checked_against_the_literals(build, message):
    with pytest.raises(ValueError) as info:
        build()
    assert message in str(info.value)


def test_make_strategy_rejects_an_unknown_name_before_tensorflow_work():
    from keras_resnet.train.strategy import make_strategy

    with pytest.raises(ValueError, match=r"Expected one of \('auto', 'default', 'mirrored'"):
        make_strategy("horovod")
