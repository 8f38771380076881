"""options.py: defaults and value checks."""

import pytest

from keras_resnet.data.options import AugmentConfig, DataConfig, validate_data_config


def test_defaults_are_valid():
    config = DataConfig()
    validate_data_config(config)
    assert config.dataset == "cifar10" and config.batch_size == 128 and isinstance(config.augment, AugmentConfig)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"batch_size": 0}, "batch_size=0"),
        ({"validation_fraction": 1.0}, "validation_fraction=1.0"),
        ({"cache": "gpu"}, "cache='gpu'"),
        ({"normalization": "imagenet"}, "normalization='imagenet'"),
        ({"dataset": None, "data_dir": None}, "No data source"),
        ({"augment": AugmentConfig(erasing=2.0)}, "erasing=2.0"),
        ({"augment": AugmentConfig(resized_scale=(0.5,))}, "resized_scale"),
        ({"augment": AugmentConfig(flip_mode="sometimes")}, "flip_mode='sometimes'"),
    ],
)
def test_bad_values_are_named(changes, match):
    with pytest.raises(ValueError, match=match):
        validate_data_config(DataConfig().replace(**changes))
