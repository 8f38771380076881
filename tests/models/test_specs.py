"""The model table: names, parameter counts pinned, argument errors."""

import keras
import numpy as np
import pytest

import keras_resnet as kr
from keras_resnet.models.specs import SPECS, cifar_spec, get_spec

EXPECTED_NAMES = [
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnet18_v2", "resnet34_v2", "resnet50_v2", "resnet101_v2", "resnet152_v2",
    "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
    "resnet20_v2", "resnet32_v2", "resnet44_v2", "resnet56_v2", "resnet110_v2",
]  # fmt: skip

# Keras count_params() with a 1000-class top, from the issue / keras.applications / torchvision.
PINNED_PARAMS = {
    "resnet50": 25_636_712,
    "resnet101": 44_707_176,
    "resnet152": 60_419_944,
    "resnet50_v2": 25_613_800,
    "resnet101_v2": 44_675_560,
    "resnet152_v2": 60_380_648,
    "resnet18": 11_699_112,
    "resnet34": 21_814_696,
}
TORCHVISION_TRAINABLE = {"resnet18": 11_689_512, "resnet34": 21_797_672}


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_list_models_has_every_variant_in_order():
    assert kr.list_models() == EXPECTED_NAMES


def test_the_spec_table_holds_the_pinned_counts():
    """The published counts, checked without building (the build test checks the table against each model)."""
    assert {name: SPECS[name].params for name in PINNED_PARAMS} == PINNED_PARAMS
    assert {name: SPECS[name].trainable for name in TORCHVISION_TRAINABLE} == TORCHVISION_TRAINABLE


# Building ResNet-101/152 takes 8-14 s each on 2 cores: those four run in the slow set (CI runs it);
# their pinned counts are also checked without building, by test_the_spec_table_holds_the_pinned_counts.
DEEP = {"resnet101", "resnet152", "resnet101_v2", "resnet152_v2"}


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.slow) if name in DEEP else name for name in EXPECTED_NAMES]
)
def test_every_variant_builds_with_the_pinned_parameter_count(name):
    spec = SPECS[name]
    # Parameters do not depend on the spatial size, so build small and run it.
    model = kr.build_resnet(name, num_classes=1000, input_shape=(32, 32, 3))
    assert model.name == name
    assert model.count_params() == spec.params
    assert trainable_count(model) == spec.trainable
    if name in PINNED_PARAMS:
        assert spec.params == PINNED_PARAMS[name]
    if name in TORCHVISION_TRAINABLE:
        assert spec.trainable == TORCHVISION_TRAINABLE[name]
    out = model.predict(np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32), verbose=0)
    assert out.shape == (2, 1000)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_cifar_resnet20_is_the_papers_027m_with_option_a_shortcuts():
    model = kr.build_resnet("resnet20", num_classes=10)
    assert trainable_count(model) == 269_722
    assert model.input.shape == (None, 32, 32, 3)
    # Option A: parameter-free shortcuts, so no 1x1 projection convolutions at all.
    assert not [layer.name for layer in model.layers if layer.name.endswith("_0_conv")]
    # The stage-entry shortcut is x[:, ::2, ::2] with zero channels appended, added to the residual branch.
    names = ("conv2_block3_out", "conv3_block1_0_pad", "conv3_block1_2_bn", "conv3_block1_add")
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    block_in, shortcut, residual, added = probe.predict(np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32), verbose=0)
    assert block_in.shape == (2, 32, 32, 16) and shortcut.shape == (2, 16, 16, 32)
    np.testing.assert_array_equal(shortcut[..., :16], block_in[:, ::2, ::2, :])
    np.testing.assert_array_equal(shortcut[..., 16:], 0.0)
    np.testing.assert_allclose(added, shortcut + residual, rtol=1e-6, atol=1e-6)


def test_custom_cifar_depth():
    model = kr.build_resnet("resnet_cifar", depth=26, num_classes=10, width_multiplier=0.25)
    assert model.name == "resnet26"
    assert sum(1 for layer in model.layers if layer.name.endswith("_out")) == 12
    assert cifar_spec(1202).blocks_per_stage == (200, 200, 200)


def test_stage_names_prefix_every_block_layer():
    assert get_spec("resnet50").stage_names == ("conv2", "conv3", "conv4", "conv5")
    assert get_spec("resnet56").stage_names == ("conv2", "conv3", "conv4")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "resnet51"}, "name='resnet51'"),
        ({"name": "resnet_cifar", "depth": 21}, "depth=21"),
        ({"name": "resnet_cifar"}, "depth=None"),
        ({"name": "resnet50", "depth": 51}, "depth=51"),
        ({"name": "resnet50", "input_shape": (16, 16, 3)}, "input_shape=(16, 16, 3)"),
        ({"name": "resnet20", "input_shape": (4, 4, 3)}, "input_shape=(4, 4, 3)"),
        ({"name": "resnet20", "input_shape": (32, 32)}, "input_shape=(32, 32)"),
        ({"name": "resnet20", "num_classes": 0}, "num_classes=0"),
        ({"name": "resnet20", "pooling": "min"}, "pooling='min'"),
        ({"name": "resnet20", "include_top": False, "pooling": "sum"}, "pooling='sum'"),
        ({"name": "resnet20", "dropout": 1.5}, "dropout=1.5"),
        ({"name": "resnet20", "hidden_units": (0,)}, "hidden_units=(0,)"),
        ({"name": "resnet20", "classifier_activation": "tanh"}, "classifier_activation='tanh'"),
        ({"name": "resnet20", "width_multiplier": 0}, "width_multiplier=0"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_value(kwargs, message):
    with pytest.raises(ValueError) as excinfo:
        kr.build_resnet(**kwargs)
    assert message in str(excinfo.value)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="resnet18, resnet34"):
        kr.build_resnet("resnet-50")


@pytest.mark.parametrize("name, num_classes", [("resnet20", 10), ("resnet32_v2", 3), ("resnet18", 7)])
def test_param_counts_for_any_head_match_a_built_model(name, num_classes):
    model = kr.build_resnet(name, num_classes=num_classes, input_shape=(32, 32, 3))
    assert SPECS[name].param_counts(num_classes) == (model.count_params(), trainable_count(model))


def test_param_counts_of_the_usual_heads():
    assert SPECS["resnet20"].default_num_classes == 10 and SPECS["resnet50"].default_num_classes == 1000
    assert SPECS["resnet20"].param_counts(10) == (271_098, 269_722)  # the paper's 0.27M
    assert SPECS["resnet50"].param_counts(1000) == (25_636_712, 25_583_592)
    assert SPECS["resnet50"].feature_width == 2048 and SPECS["resnet18"].feature_width == 512
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1. Received: num_classes=0"):
        SPECS["resnet20"].param_counts(0)
