"""The classifier head and replace_head on kresnet and keras.applications models."""

import keras
import numpy as np
import pytest

import keras_resnet as kr
from keras_resnet.models.heads import find_feature_layer

IMAGES = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")


def test_head_layers_and_hidden_units():
    model = kr.build_resnet("resnet20", num_classes=4, dropout=0.3, hidden_units=(32, 16), width_multiplier=0.5)
    names = [layer.name for layer in model.layers]
    tail = names[names.index("avg_pool"):]
    assert tail == ["avg_pool", "head_dropout", "head_dense_1", "head_dropout_1", "head_dense_2", "head_dropout_2", "predictions"]
    assert model.get_layer("head_dense_1").units == 32
    assert model.get_layer("predictions").units == 4
    assert model.get_layer("predictions").get_config()["activation"] == "softmax"


def test_logits_head():
    """classifier_activation=None: the same network, its outputs the pre-softmax logits."""
    keras.utils.set_random_seed(0)
    logits_model = kr.build_resnet("resnet20", num_classes=3, classifier_activation=None, width_multiplier=0.25)
    softmax_model = kr.build_resnet("resnet20", num_classes=3, width_multiplier=0.25)
    assert logits_model.get_layer("predictions").get_config()["activation"] == "linear"
    softmax_model.set_weights(logits_model.get_weights())
    logits = logits_model.predict(IMAGES, verbose=0).astype("float64")
    probs = softmax_model.predict(IMAGES, verbose=0).astype("float64")
    # probabilities not saturated at 1 (so a scaled "logit" would show), logits not normalised
    assert probs.max() < 0.999 and not np.allclose(logits.sum(1), 1.0), (logits, probs)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs, expected / expected.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("pooling, shape", [(None, (None, 8, 8, 64)), ("avg", (None, 64)), ("max", (None, 64))])
def test_include_top_false_pooling_like_keras_applications(pooling, shape):
    model = kr.build_resnet("resnet20", include_top=False, pooling=pooling)
    assert model.output.shape == shape
    reference = keras.applications.ResNet50(weights=None, include_top=False, pooling=pooling, input_shape=(64, 64, 3))
    ours = kr.build_resnet("resnet50", include_top=False, pooling=pooling, input_shape=(64, 64, 3))
    assert ours.output.shape == reference.output.shape
    assert ours.count_params() == reference.count_params()


def test_head_computes_in_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = kr.build_resnet("resnet20", num_classes=5, hidden_units=(8,), width_multiplier=0.25)
    assert model.get_layer("conv2_block1_1_conv").compute_dtype == "float16"
    for name in ("avg_pool", "head_dense_1", "predictions"):
        assert model.get_layer(name).compute_dtype == "float32"
    assert model.output.dtype == "float32"


def test_replace_head_on_a_kresnet_model_keeps_backbone_weights():
    model = kr.build_resnet("resnet20", num_classes=10, width_multiplier=0.25)
    new = kr.replace_head(model, num_classes=3, dropout=0.2, hidden_units=(16,))
    assert new.output.shape == (None, 3)
    assert new.get_layer("conv4_block3_out") is model.get_layer("conv4_block3_out")
    assert new.get_layer("predictions") is not model.get_layer("predictions")
    # Same backbone: features are identical.
    feats_old = keras.Model(model.input, model.get_layer("avg_pool").output).predict(IMAGES, verbose=0)
    feats_new = keras.Model(new.input, new.get_layer("avg_pool").output).predict(IMAGES, verbose=0)
    np.testing.assert_allclose(feats_old, feats_new, atol=1e-6)


@pytest.mark.parametrize("include_top", [True, False])
def test_replace_head_on_keras_applications_resnet(include_top):
    base = keras.applications.ResNet50V2(weights=None, include_top=include_top, input_shape=(64, 64, 3))
    new = kr.replace_head(base, num_classes=7)
    assert find_feature_layer(base).name == "post_relu"
    assert new.output.shape == (None, 7)
    assert new.layers[-1].name == "predictions" and new.layers[-2].name == "avg_pool"
    assert new.count_params() == base.count_params() - (2048 * 1000 + 1000) * include_top + 2048 * 7 + 7
    out = new.predict(np.random.default_rng(3).random((2, 64, 64, 3)).astype("float32"), verbose=0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_replace_head_rejects_bad_arguments_and_models_without_feature_maps():
    model = kr.build_resnet("resnet20", num_classes=10, width_multiplier=0.25)
    with pytest.raises(ValueError, match="num_classes=0"):
        kr.replace_head(model, num_classes=0)
    dense_only = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="4-D"):
        kr.replace_head(dense_only, num_classes=2)
