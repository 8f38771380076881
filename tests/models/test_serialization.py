"""get_config/from_config and .keras save/load round trips need no custom objects."""

import keras
import numpy as np
import pytest

import keras_resnet as kr

IMAGES = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")


@pytest.mark.parametrize(
    "name", ["resnet20", "resnet20_v2", "resnet18", "resnet18_v2", pytest.param("resnet50_v2", marks=pytest.mark.slow)]
)
def test_config_and_keras_file_round_trip(name, tmp_path):
    model = kr.build_resnet(name, num_classes=3, input_shape=(32, 32, 3), dropout=0.1, hidden_units=(8,))
    expected = model.predict(IMAGES, verbose=0)

    rebuilt = keras.Model.from_config(model.get_config())
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in model.layers]
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_allclose(rebuilt.predict(IMAGES, verbose=0), expected, atol=1e-6)

    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)  # plain layers only: safe mode loads it
    np.testing.assert_allclose(loaded.predict(IMAGES, verbose=0), expected, atol=1e-6)
