"""keras_resnet.models.zero_init: every residual branch's last layer starts at zero, so each block starts as its shortcut."""

import keras
import numpy as np
import pytest

import keras_resnet as kr
from keras_resnet.models.zero_init import residual_branch_ends, zero_init_residual_branches

# (model, blocks, first and last branch end): v1 ends in a BatchNorm, pre-activation v2 in a convolution.
EXPECTED = [
    ("resnet20", 9, "conv2_block1_2_bn", "conv4_block3_2_bn"),
    ("resnet20_v2", 9, "conv2_block1_2_conv", "conv4_block3_2_conv"),
    ("resnet18", 8, "conv2_block1_2_bn", "conv5_block2_2_bn"),
    ("resnet50", 16, "conv2_block1_3_bn", "conv5_block3_3_bn"),
    ("resnet50_v2", 16, "conv2_block1_3_conv", "conv5_block3_3_conv"),
]


def build(name):
    keras.utils.set_random_seed(0)
    return kr.build_resnet(name, num_classes=10, input_shape=(32, 32, 3))


@pytest.mark.parametrize(("name", "blocks", "first", "last"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_exactly_the_branch_ends_start_at_zero(name, blocks, first, last):
    model = build(name)
    before = {w.path: np.asarray(w) for w in model.weights}
    names = zero_init_residual_branches(model)
    assert len(names) == blocks and names[0] == first and names[-1] == last
    assert len(set(names)) == blocks
    zeroed = {w.path for n in names for w in (
        [model.get_layer(n).gamma] if n.endswith("_bn") else model.get_layer(n).weights)}
    for w in model.weights:
        if w.path in zeroed:
            assert not np.any(np.asarray(w)), w.path
            if not w.path.endswith("bias"):  # biases start at zero anyway
                assert np.any(before[w.path]), w.path
        else:
            np.testing.assert_array_equal(np.asarray(w), before[w.path], err_msg=w.path)


@pytest.mark.parametrize("name", ["resnet20", "resnet20_v2", "resnet50"])
def test_every_block_starts_as_its_shortcut(name):
    model = build(name)
    zero_init_residual_branches(model)
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    probe = keras.Model(model.input, [t for add in adds for t in (add.input[0], add.output)])
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    outputs = probe.predict(images, verbose=0)
    for add, shortcut, added in zip(adds, outputs[0::2], outputs[1::2]):
        # v1: the branch's BatchNorm outputs its offset beta, zero at initialisation; v2: a zero convolution.
        np.testing.assert_allclose(added, shortcut, atol=1e-6, err_msg=add.name)
        assert np.abs(shortcut).max() > 0


def test_without_zero_init_the_blocks_add_their_branch():
    model = build("resnet20")
    add = model.get_layer("conv2_block1_add")
    shortcut, added = keras.Model(model.input, [add.input[0], add.output]).predict(np.ones((1, 32, 32, 3)), verbose=0)
    assert np.abs(added - shortcut).max() > 1e-3


def test_a_model_not_built_by_kresnet_is_refused_with_the_layer_named():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(4, name="dense")(inputs)
    model = keras.Model(inputs, keras.layers.Add(name="merge_add")([inputs, x]))
    with pytest.raises(ValueError, match="'merge_add'.*build_resnet"):
        residual_branch_ends(model)
