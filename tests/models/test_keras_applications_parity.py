"""ResNet-50/101/152 (v1, v2) are keras.applications layer for layer: names, counts, outputs."""

import keras
import numpy as np
import pytest

import keras_resnet as kr

KERAS_APPS = {
    "resnet50": keras.applications.ResNet50,
    "resnet101": keras.applications.ResNet101,
    "resnet152": keras.applications.ResNet152,
    "resnet50_v2": keras.applications.ResNet50V2,
    "resnet101_v2": keras.applications.ResNet101V2,
    "resnet152_v2": keras.applications.ResNet152V2,
}


def weighted_layers(model):
    return {layer.name: layer for layer in model.layers if layer.weights}


# ResNet-101/152 repeat ResNet-50's blocks (only the block counts differ): the default suite checks
# ResNet-50 v1/v2, the slow set (CI runs it) the deeper four.
DEEP = {"resnet101", "resnet152", "resnet101_v2", "resnet152_v2"}


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.slow) if name in DEEP else name for name in KERAS_APPS]
)
def test_same_layers_and_outputs_as_keras_applications(name):
    shape = (64, 64, 3)
    reference = KERAS_APPS[name](weights=None, input_shape=shape)
    ours = kr.build_resnet(name, input_shape=shape)
    assert ours.count_params() == reference.count_params()

    ref_layers, our_layers = weighted_layers(reference), weighted_layers(ours)
    assert list(ref_layers) == list(our_layers)  # same names in the same order
    for layer_name, ref_layer in ref_layers.items():
        assert ref_layer.get_config() | {"name": ""} == our_layers[layer_name].get_config() | {"name": ""}
        our_layers[layer_name].set_weights(ref_layer.get_weights())

    images = np.random.default_rng(1).normal(size=(2, *shape)).astype("float32")
    # Non-trivial BatchNorm statistics so inference mode is really compared.
    for layer in reference.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            rng = np.random.default_rng(len(layer.name))
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma, beta, rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
            ours.get_layer(layer.name).set_weights(layer.get_weights())
    expected = reference.predict(images, verbose=0)
    got = ours.predict(images, verbose=0)
    assert np.max(np.abs(expected - got)) <= 1e-5


def test_keras_applications_weight_file_loads_into_ours_by_name(tmp_path):
    reference = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3))
    path = tmp_path / "resnet50.weights.h5"
    reference.save_weights(path)
    ours = kr.build_resnet("resnet50", input_shape=(64, 64, 3))
    ours.load_weights(path)
    images = np.random.default_rng(2).random((2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(ours.predict(images, verbose=0), reference.predict(images, verbose=0), atol=1e-5)
