"""keras_resnet.train.config: the config layer re-exported, plus the model-table check.

The loader's own tests are in tests/config/.
"""

import re

import pytest

import keras_resnet.config as config_layer
from keras_resnet.train import config as train_config


def test_old_import_paths_are_the_config_layer():
    for name in ("TrainConfig", "FinetuneConfig", "DataConfig", "AugmentConfig", "save_config", "find_recipe",
                 "configs_dir", "CONFIGS_DIR", "config_to_dict", "parse_set_value"):
        assert getattr(train_config, name) is getattr(config_layer, name), name
    from keras_resnet.data import options
    from keras_resnet.train import finetune

    assert options.DataConfig is config_layer.DataConfig
    assert options.validate_data_config is config_layer.validate_data_config
    assert finetune.FinetuneConfig is config_layer.FinetuneConfig


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"model.name": "resnet7"}, "Invalid config value for model.name / model.depth: Unknown model name"),
        ({"model.depth": 21}, "fixed depth of 20"),  # the default resnet20
        ({"model.name": "resnet_cifar", "model.depth": 21}, "6n+2"),
    ],
)
def test_model_name_and_depth_are_checked_against_the_model_table(overrides, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        train_config.load_config(overrides=overrides)
    with pytest.raises(ValueError, match=re.escape(fragment)):
        train_config.with_overrides(config_layer.TrainConfig(), overrides)
    with pytest.raises(ValueError, match="resnet7|21"):
        train_config.validate_config(config_layer.with_overrides(config_layer.TrainConfig(), overrides))


def test_the_config_layer_alone_does_not_know_the_model_table():
    assert config_layer.load_config(set_values=["model.name=resnet7"]).model.name == "resnet7"
    assert train_config.load_config(set_values=["model.name=resnet_cifar", "model.depth=26"]).model.depth == 26


@pytest.mark.parametrize("value", [0.0, 1.0, 1.5, -0.1])
def test_ema_momentum_out_of_range_is_refused_by_name(value):
    with pytest.raises(ValueError, match=r"optimizer\.ema_momentum"):
        train_config.load_config(overrides={"optimizer.ema_momentum": value})


def test_stem_init_is_checked_by_name():
    assert train_config.load_config(overrides={"model.stem_init": "whitening_frozen"}).model.stem_init == "whitening_frozen"
    with pytest.raises(ValueError, match=r"model\.stem_init"):
        train_config.load_config(overrides={"model.stem_init": "pca"})
    with pytest.raises(ValueError, match=r"model\.stem_init must be 'random' when model\.weights is set"):
        train_config.load_config(overrides={"model.stem_init": "whitening", "model.weights": "imagenet",
                                            "model.name": "resnet50"})


def test_zero_init_residual_is_only_for_training_from_scratch():
    assert train_config.load_config(overrides={"model.zero_init_residual": True}).model.zero_init_residual is True
    assert train_config.load_config().model.zero_init_residual is False
    with pytest.raises(ValueError, match=r"model\.zero_init_residual must be false when model\.weights is set.*imagenet"):
        train_config.load_config(overrides={"model.zero_init_residual": True, "model.weights": "imagenet",
                                            "model.name": "resnet50"})
