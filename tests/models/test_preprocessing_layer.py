"""The model carries its preprocessing: `build_resnet(include_preprocessing=True)`."""

import numpy as np
import pytest

from keras_resnet import build_resnet
from keras_resnet.data.preprocess import normalize
from keras_resnet.preprocessing import PREPROCESSING_LAYER, has_preprocessing, make_spec, spec_of

PIXELS = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype(np.uint8)


@pytest.mark.parametrize("mode", ["unit", "tf", "torch", "caffe", "dataset"])
def test_model_on_raw_pixels_equals_normalise_then_backbone(mode):
    spec = make_spec(mode, 32, [120.0, 110.0, 100.0], [60.0, 61.0, 62.0]) if mode == "dataset" else make_spec(mode, 32)
    raw = build_resnet("resnet20", num_classes=4, width_multiplier=0.25, include_preprocessing=True, preprocessing=spec)
    plain = build_resnet("resnet20", num_classes=4, width_multiplier=0.25)
    plain.set_weights(raw.get_weights())  # the preprocessing layer has no weights
    assert raw.count_params() == plain.count_params()
    expected = plain.predict(np.asarray(normalize(PIXELS.astype("float32"), spec)), verbose=0)
    np.testing.assert_allclose(raw.predict(PIXELS, verbose=0), expected, atol=1e-5)
    assert spec_of(raw)["mode"] == mode


def test_caffe_matches_keras_applications_preprocess_input():
    import keras

    model = build_resnet("resnet50", input_shape=(32, 32, 3), include_top=False, pooling=None, include_preprocessing=True)
    front = keras.Model(model.inputs, model.get_layer("conv1_pad").input)  # what the stem receives
    expected = keras.applications.resnet.preprocess_input(PIXELS.astype("float32"))
    np.testing.assert_allclose(front.predict(PIXELS, verbose=0), expected, atol=1e-4)


def test_backbone_names_are_unchanged_so_weights_load_by_name():
    raw = build_resnet("resnet18", num_classes=3, include_preprocessing=True)
    plain = build_resnet("resnet18", num_classes=3)
    assert [layer.name for layer in raw.layers if layer.name != PREPROCESSING_LAYER] == [layer.name for layer in plain.layers]
    assert raw.layers[1].name == PREPROCESSING_LAYER and has_preprocessing(raw) and not has_preprocessing(plain)
    assert spec_of(raw)["mode"] == "torch"  # what torchvision's ImageNet weights expect


def test_loading_weights_from_a_model_without_preprocessing(tmp_path):
    plain = build_resnet("resnet20", num_classes=4, width_multiplier=0.25)
    plain.save_weights(tmp_path / "w.weights.h5")
    raw = build_resnet("resnet20", num_classes=4, width_multiplier=0.25, weights=str(tmp_path / "w.weights.h5"),
                       include_preprocessing=True, preprocessing="tf")
    for a, b in zip(raw.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_preprocessing_runs_in_float32_under_mixed_precision(tmp_path):
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = build_resnet("resnet20", num_classes=2, width_multiplier=0.25, include_preprocessing=True, preprocessing="unit")
    assert model.get_layer(PREPROCESSING_LAYER).compute_dtype == "float32"
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")  # safe mode: no custom objects, no Lambda
    np.testing.assert_allclose(loaded.predict(PIXELS, verbose=0), model.predict(PIXELS, verbose=0), atol=1e-6)


def test_bad_preprocessing_arguments_are_named():
    with pytest.raises(ValueError, match="needs the train split's statistics"):
        build_resnet("resnet20", include_preprocessing=True, preprocessing="dataset")
    with pytest.raises(ValueError, match="preprocessing must be one of"):
        build_resnet("resnet20", include_preprocessing=True, preprocessing="imagenet")
    with pytest.raises(ValueError, match="only used with include_preprocessing=True"):
        build_resnet("resnet20", preprocessing="unit")
    with pytest.raises(ValueError, match=r"spec is for \[64, 64\] images but the model takes \[32, 32\]"):
        build_resnet("resnet20", include_preprocessing=True, preprocessing=make_spec("unit", 64))
