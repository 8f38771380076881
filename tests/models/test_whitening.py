"""The PCA-whitening stem: patch extraction, the whitening kernel, and setting a model's stem."""

import numpy as np
import pytest

from keras_resnet.models import build_resnet
from keras_resnet.models.naming import STEM_CONV
from keras_resnet.models.whitening import image_patches, init_stem_whitening, whitening_kernel


def correlated_images(n=64, size=16, seed=0):
    """Smooth, colour-correlated images: neighbouring pixels and channels share most of their variance."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, size + 2, size + 2, 1))
    smooth = (base[:, :-2, :-2] + base[:, 1:-1, 1:-1] + base[:, 2:, 2:]) / 3.0  # (n, size, size, 1)
    colour = np.array([1.0, 0.8, 0.6])
    return smooth * colour + 0.05 * rng.normal(size=(n, size, size, 3))


def test_image_patches_are_the_windows_in_kh_kw_c_order():
    images = np.arange(2 * 4 * 5 * 3, dtype=np.float32).reshape(2, 4, 5, 3)
    patches = image_patches(images, (3, 3), max_patches=10_000)
    assert patches.shape == (2 * 2 * 3, 27)
    expected = {tuple(images[n, i:i + 3, j:j + 3, :].reshape(-1)) for n in range(2) for i in range(2) for j in range(3)}
    assert {tuple(row) for row in patches} == expected
    assert image_patches(images, (3, 3), max_patches=5).shape == (5, 27)


def test_kernel_whitens_the_top_directions_and_pairs_each_with_its_negative():
    patches = image_patches(correlated_images(), (3, 3))
    kernel, eigenvalues = whitening_kernel(patches, (3, 3, 3), filters=16, eps=0.0)
    assert kernel.shape == (3, 3, 3, 16) and kernel.dtype == np.float32
    assert np.all(np.diff(eigenvalues) <= 1e-12)  # largest first
    flat = kernel.reshape(27, 16)
    np.testing.assert_array_equal(flat[:, 8:], -flat[:, :8])
    responses = (patches - patches.mean(axis=0)) @ flat[:, :8]
    # decorrelated, unit variance: the covariance of the stem's responses is the identity
    np.testing.assert_allclose(np.cov(responses, rowvar=False), np.eye(8), atol=1e-6)
    # eps bounds the gain of a direction: variance lambda / (lambda + eps)
    kernel_eps, _ = whitening_kernel(patches, (3, 3, 3), filters=16, eps=0.1)
    variances = np.var((patches - patches.mean(axis=0)) @ kernel_eps.reshape(27, 16)[:, :8], axis=0, ddof=1)
    np.testing.assert_allclose(variances, eigenvalues[:8] / (eigenvalues[:8] + 0.1), rtol=1e-6)


def test_odd_filter_count_keeps_the_last_direction_once():
    patches = image_patches(correlated_images(), (3, 3))
    kernel, _ = whitening_kernel(patches, (3, 3, 3), filters=5)
    flat = kernel.reshape(27, 5)
    np.testing.assert_array_equal(flat[:, 3:5], -flat[:, 0:2])


@pytest.mark.parametrize(
    "patches, shape, filters, message",
    [
        (np.zeros((10, 27)), (3, 3, 3), 56, "keeps 28 principal directions, but 3x3x3 patches have only 27"),
        (np.zeros((10, 12)), (3, 3, 3), 16, r"patches must be \(P, 27\)"),
        (np.zeros((1, 27)), (3, 3, 3), 16, "at least 2 patches"),
    ],
)
def test_bad_kernel_requests_are_refused_by_what_is_wrong(patches, shape, filters, message):
    with pytest.raises(ValueError, match=message):
        whitening_kernel(patches, shape, filters)


def test_too_small_images_are_refused():
    with pytest.raises(ValueError, match="at least 3x3 pixels"):
        image_patches(np.zeros((2, 2, 8, 3)), (3, 3))
    with pytest.raises(ValueError, match="NHWC"):
        image_patches(np.zeros((8, 8, 3)), (3, 3))


def test_init_sets_the_stem_from_what_the_stem_sees_through_the_preprocessing_layer():
    """uint8 images in; the kernel is computed from the normalised pixels the stem convolution receives."""
    mean, std = [120.0, 110.0, 100.0], [60.0, 50.0, 40.0]
    preprocessing = {"mode": "dataset", "mean": mean, "std": std, "image_size": [16, 16]}
    model = build_resnet("resnet20", num_classes=3, input_shape=(16, 16, 3), include_preprocessing=True,
                         preprocessing=preprocessing)
    pixels = np.clip(correlated_images() * 40 + 115, 0, 255).astype(np.uint8)
    before = [np.array(w) for w in model.get_layer("conv2_block1_1_conv").get_weights()]
    summary = init_stem_whitening(model, pixels, trainable=False)
    assert summary["layer"] == STEM_CONV and summary["components"] == 8 and summary["images"] == 64
    assert 0.5 < summary["explained_variance"] <= 1.0
    normalised = (pixels.astype(np.float64) - mean) / std
    expected, _ = whitening_kernel(image_patches(normalised, (3, 3)), (3, 3, 3), 16)
    stem = model.get_layer(STEM_CONV)
    np.testing.assert_allclose(np.asarray(stem.kernel), expected, atol=2e-3)
    assert not stem.trainable
    np.testing.assert_array_equal(model.get_layer("conv2_block1_1_conv").get_weights()[0], before[0])


def test_init_refuses_a_model_without_a_stem_convolution():
    import keras

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, name="other")(inputs), name="plain")
    with pytest.raises(ValueError, match="has no layer 'conv1_conv'"):
        init_stem_whitening(model, np.zeros((2, 8, 8, 3)))
