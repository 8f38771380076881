"""preprocess.py: decoding, the five normalisation modes (numbers), resizing, spec files."""

import io
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_resnet.data.preprocess import (
    decode_image,
    inference_preprocess,
    load_preprocessing,
    make_spec,
    normalize,
    resize_for_eval,
    save_preprocessing,
)

PIXELS = np.array([[[[0.0, 128.0, 255.0], [10.0, 20.0, 30.0]]]], dtype=np.float32)  # [1, 1, 2, 3]


def test_unit_mode():
    out = normalize(PIXELS, make_spec("unit", 32)).numpy()
    np.testing.assert_allclose(out, PIXELS / 255.0, rtol=1e-6)


def test_tf_mode_matches_keras_resnet_v2():
    out = normalize(PIXELS, make_spec("tf", 32)).numpy()
    np.testing.assert_allclose(out, keras.applications.resnet_v2.preprocess_input(PIXELS.copy()), atol=1e-5)
    assert out.min() >= -1.0 and out.max() <= 1.0


def test_caffe_mode_matches_keras_resnet_v1():
    out = normalize(PIXELS, make_spec("caffe", 32)).numpy()
    expected = keras.applications.resnet.preprocess_input(PIXELS.copy())
    np.testing.assert_allclose(out, expected, atol=1e-4)
    # BGR: the first output channel is blue minus the blue mean.
    assert out[0, 0, 0, 0] == pytest.approx(255.0 - 103.939, abs=1e-3)


def test_torch_mode_imagenet_mean_std():
    out = normalize(PIXELS, make_spec("torch", 32)).numpy()
    mean = np.array([0.485, 0.456, 0.406])
    std = np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(out, (PIXELS / 255.0 - mean) / std, atol=1e-5)


def test_dataset_mode_uses_given_stats():
    spec = make_spec("dataset", (32, 32), mean=[10, 20, 30], std=[2, 4, 5])
    out = normalize(PIXELS, spec).numpy()
    np.testing.assert_allclose(out[0, 0, 1], [0.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(out[0, 0, 0], [-5.0, 27.0, 45.0], atol=1e-5)


def test_dataset_mode_needs_stats_and_unknown_mode_rejected():
    with pytest.raises(ValueError, match="mean"):
        make_spec("dataset", 32)
    with pytest.raises(ValueError, match="mode='bgr'"):
        make_spec("bgr", 32)


def _encode(image: Image.Image, fmt="PNG") -> tf.Tensor:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return tf.constant(buf.getvalue())


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_decode_converts_to_rgb_uint8(mode):
    rgb = Image.new("RGB", (5, 4), (100, 150, 200))
    if mode == "I;16":
        image = Image.fromarray(np.full((4, 5), 40000, dtype=np.uint16))
    else:
        image = rgb.convert(mode)
    out = decode_image(_encode(image))
    assert out.dtype == tf.uint8 and tuple(out.shape) == (4, 5, 3)
    if mode == "RGBA" or mode == "P":
        np.testing.assert_allclose(out.numpy()[0, 0], [100, 150, 200], atol=6)  # palette quantises
    if mode == "I;16":
        assert abs(int(out.numpy()[0, 0, 0]) - 40000 // 257) <= 1
    if mode == "L":  # PIL's luma of (100, 150, 200), replicated to R, G and B
        np.testing.assert_array_equal(out.numpy(), np.full((4, 5, 3), np.asarray(image)[0, 0]))
        assert abs(int(np.asarray(image)[0, 0]) - round(0.299 * 100 + 0.587 * 150 + 0.114 * 200)) <= 1


def test_decode_replicates_a_grayscale_gradient_to_every_channel():
    gray = (np.arange(6 * 7).reshape(6, 7) * 6).astype(np.uint8)  # every pixel different: the layout is checked too
    for fmt in ("PNG", "BMP"):
        out = decode_image(_encode(Image.fromarray(gray, mode="L"), fmt)).numpy()
        assert out.shape == (6, 7, 3)
        for channel in range(3):
            np.testing.assert_array_equal(out[..., channel], gray)


def test_resize_for_eval_and_inference_preprocess():
    images = np.full((2, 16, 12, 3), 255, dtype=np.uint8)
    resized = resize_for_eval(images, (8, 8))
    assert resized.dtype == tf.float32 and tuple(resized.shape) == (2, 8, 8, 3)
    np.testing.assert_allclose(resized.numpy(), 255.0)
    out = inference_preprocess(images, make_spec("unit", 8)).numpy()
    assert out.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(out, 1.0, atol=1e-6)


def test_save_and_load_preprocessing(tmp_path):
    spec = make_spec("dataset", 32, [1, 2, 3], [4, 5, 6])
    path = save_preprocessing(tmp_path, spec)
    assert path.name == "preprocessing.json"
    assert json.loads(path.read_text()) == spec
    assert load_preprocessing(tmp_path) == spec
    assert load_preprocessing(path) == spec
    with pytest.raises(FileNotFoundError, match="preprocessing.json"):
        load_preprocessing(tmp_path / "nowhere")
    (tmp_path / "bad.json").write_text('{"mode": "unit"}')
    with pytest.raises(ValueError, match="lacks keys"):
        load_preprocessing(tmp_path / "bad.json")
