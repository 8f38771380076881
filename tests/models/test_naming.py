"""models/naming.py: the layer names the builder produces are the names freezing, weights and heads key on."""

import keras
import pytest

import keras_resnet as kr
from keras_resnet.models import naming
from keras_resnet.models.specs import SPECS, get_spec


def test_prefixes_follow_keras_applications():
    assert [naming.stage_prefix(s) for s in (1, 2, 3, 4)] == ["conv2", "conv3", "conv4", "conv5"]
    assert naming.block_prefix(1, 3) == "conv2_block3"
    assert naming.head_dense_name(2) == "head_dense_2" and naming.head_dropout_name() == "head_dropout"
    assert naming.head_dropout_name(1) == "head_dropout_1"
    assert naming.POOLING_LAYER_NAMES == {"avg": "avg_pool", "max": "max_pool"}
    assert get_spec("resnet50").stage_names == ("conv2", "conv3", "conv4", "conv5")
    assert SPECS["resnet20"].stage_names == ("conv2", "conv3", "conv4")


@pytest.mark.parametrize(
    "name, group",
    [
        ("conv1_conv", "stem"), ("pool1_pool", "stem"), ("conv2_block1_1_conv", "stage1"),
        ("conv5_block3_out", "stage4"), ("post_relu", "post"), ("avg_pool", "head"), ("max_pool", "head"),
        ("head_dense_1", "head"), ("predictions", "head"), ("input_layer", "other"), ("convert", "other"),
    ],
)
def test_layer_group(name, group):
    assert naming.layer_group(name) == group
    assert naming.is_head_layer(name) == (group == "head")


@pytest.mark.parametrize("name, stages", [("resnet20", 3), ("resnet18_v2", 4)])
def test_every_layer_of_a_built_model_has_a_group(name, stages):
    model = kr.build_resnet(name, num_classes=3, hidden_units=(8,), dropout=0.1, width_multiplier=0.0625,
                            input_shape=(32, 32, 3))
    groups = {layer.name: naming.layer_group(layer.name) for layer in naming.leaf_layers(model)}
    others = {n for n, g in groups.items() if g == "other"}
    assert all(isinstance(model.get_layer(n), keras.layers.InputLayer) or "preprocessing" in n for n in others), others
    assert naming.count_stages(model) == stages
    spec = get_spec(name)
    for stage, prefix in enumerate(spec.stage_names, start=1):
        blocks = {"_".join(n.split("_")[:2]) for n in groups if n.startswith(prefix + "_block")}
        assert blocks == {naming.block_prefix(stage, b) for b in range(1, spec.blocks_per_stage[stage - 1] + 1)}
    head = [n for n, g in groups.items() if g == "head"]
    assert head == ["avg_pool", "head_dropout", "head_dense_1", "head_dropout_1", "predictions"]


def test_leaf_layers_descend_into_nested_models():
    inner = kr.build_resnet("resnet20", num_classes=2, width_multiplier=0.25, include_top=False, pooling=None)
    inputs = keras.Input((32, 32, 3))
    outer = keras.Model(inputs, keras.layers.Dense(2, name="predictions")(
        keras.layers.GlobalAveragePooling2D(name="avg_pool")(inner(inputs))))
    names = [layer.name for layer in naming.leaf_layers(outer)]
    assert "conv2_block1_1_conv" in names and names[-1] == "predictions"
    assert inner.name not in names and naming.count_stages(outer) == 3
