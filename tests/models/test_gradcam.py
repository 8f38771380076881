"""Grad-CAM: answers known in advance (the evidence is in the left half), layer found by naming, nested models."""

import keras
import numpy as np
import pytest

import keras_resnet as kr
from keras_resnet.models.gradcam import find_gradcam_layer, grad_cam

SIZE = 32


def half_images(n: int, seed: int):
    """Class 0: horizontal stripes in the left half; class 1: vertical ones; class 2: none.

    Every image is binary noise (same pixel statistics as the stripes) with the
    stripes, if any, pasted over its left half: the right half says nothing about the
    class. (Class 2 makes classes 0 and 1 need evidence of their own, not just the
    absence of the other's.)"""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = (rng.integers(0, 2, (n, SIZE, SIZE, 1)) * 255).repeat(3, axis=-1).astype(np.uint8)
    rows, cols = np.mgrid[0:SIZE, 0 : SIZE // 2]
    for i, y in enumerate(labels):
        if y == 2:
            continue
        phase = rng.integers(0, 2)
        stripes = ((rows if y == 0 else cols) + phase) % 2 * 255
        images[i, :, : SIZE // 2, :] = stripes[..., None]
    return images, labels


def tiny_cnn():
    """Raw pixels in; two named conv stages (kresnet/keras.applications naming); GAP + softmax head."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255.0, name="preprocessing")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2_block1_out")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv3_block1_out")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="half")


@pytest.fixture(scope="module")
def half_model():
    keras.utils.set_random_seed(0)
    model = tiny_cnn()
    x, y = half_images(384, seed=0)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    test_x, test_y = half_images(24, seed=1)
    assert (model.predict(test_x, verbose=0).argmax(1) == test_y).mean() == 1.0  # it learned the task
    return model, test_x, test_y


def left_share(maps):
    return maps[..., : SIZE // 2].sum(axis=(1, 2)) / maps.sum(axis=(1, 2))


def test_grad_cam_puts_most_of_its_mass_on_the_half_that_decides_the_class(half_model):
    model, x, y = half_model
    maps = kr.grad_cam(model, x)
    assert maps.shape == (len(x), SIZE, SIZE) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and np.allclose(maps.max(axis=(1, 2)), 1.0)
    share = left_share(maps)
    striped = y < 2
    assert share[striped].min() > 0.8, share  # every striped image: most of the map on the left half
    assert share[striped].mean() > 0.9, share[striped].mean()
    # the control: noise-only images have their evidence everywhere, no pull to the left
    assert 0.3 < share[~striped].mean() < 0.7, share[~striped]


def test_the_same_for_the_true_class_named_explicitly_and_for_one_image(half_model):
    model, x, y = half_model
    assert np.allclose(grad_cam(model, x, class_index=y), grad_cam(model, x))  # predicted == true here
    one = grad_cam(model, x[0], class_index=int(y[0]))
    assert one.shape == (SIZE, SIZE)
    assert np.allclose(one, grad_cam(model, x[:1], class_index=int(y[0]))[0])


def test_a_wrapped_model_gives_the_maps_of_the_model_inside(half_model):
    """A legacy run's model: raw pixels -> preprocessing -> the saved model (nested)."""
    model, x, _ = half_model
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    scaled = keras.layers.Rescaling(255.0, name="preprocessing")(inputs)  # feeds the inner model 0..255 again
    wrapper = keras.Model(inputs, model(scaled))
    assert find_gradcam_layer(wrapper).name == "conv3_block1_out"
    assert np.allclose(grad_cam(wrapper, x / 255.0), grad_cam(model, x), atol=1e-5)


def test_a_backbone_nested_inside_a_transfer_model_with_a_head_after_it():
    base = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    inputs = keras.Input((SIZE, SIZE, 3))
    features = base(keras.layers.Rescaling(1 / 255.0, name="preprocessing")(inputs))
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(pooled))
    assert find_gradcam_layer(model).name == "conv5_block3_out"
    x = np.random.default_rng(0).integers(0, 256, (2, SIZE, SIZE, 3)).astype(np.uint8)
    maps = grad_cam(model, x, class_index=[0, 2])
    assert maps.shape == (2, SIZE, SIZE) and np.isfinite(maps).all()


@pytest.mark.parametrize(
    "build, expected",
    [
        (lambda: kr.build_resnet("resnet20", num_classes=3, width_multiplier=0.25, include_preprocessing=True,
                                 preprocessing="unit", input_shape=(32, 32, 3)), "conv4_block3_out"),
        (lambda: kr.build_resnet("resnet18", num_classes=3, input_shape=(32, 32, 3)), "conv5_block2_out"),
        (lambda: keras.applications.ResNet50V2(weights=None, input_shape=(32, 32, 3), classes=3), "post_relu"),
    ],
    ids=["kresnet-cifar", "kresnet-resnet18", "keras-applications-v2"],
)
def test_the_last_stage_is_found_by_its_name(build, expected):
    model = build()
    assert find_gradcam_layer(model).name == expected
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype(np.uint8)
    maps = grad_cam(model, x)
    assert maps.shape == (2, 32, 32) and np.isfinite(maps).all()


def test_a_calibrated_model_explains_like_the_model_it_wraps(half_model):
    """A softmax after the head (temperature): the centred log-probabilities are the logits / T."""
    from keras_resnet.train.calibration import calibrated_model

    model, x, _ = half_model
    assert np.allclose(grad_cam(calibrated_model(model, 2.5), x), grad_cam(model, x), atol=1e-4)


def test_errors_name_the_problem(half_model):
    model, x, _ = half_model
    with pytest.raises(ValueError, match="takes 32x32 images. Received: 16x16"):
        grad_cam(model, x[:, :16, :16])
    with pytest.raises(ValueError, match=r"class_index must be in \[0, 3\)"):
        grad_cam(model, x, class_index=3)
    with pytest.raises(ValueError, match="no layer named 'conv9_block1_out'"):
        grad_cam(model, x, layer="conv9_block1_out")
    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match="no convolutional feature map"):
        find_gradcam_layer(dense)


def test_a_model_ending_in_a_softmax_layer_is_explained_by_its_centred_logits():
    """log p_c - mean_k log p_k = z_c - mean_k z_k: the maps of the same network with centred
    classifier weights and a linear output (read as logits)."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv2_block1_out")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(4, name="logits")
    probabilities = keras.layers.Softmax()(dense(pooled))
    model = keras.Model(inputs, probabilities)
    centred = keras.layers.Dense(4, name="centred_logits")
    linear = keras.Model(inputs, centred(pooled))
    kernel, bias = dense.get_weights()
    centred.set_weights([kernel - kernel.mean(axis=1, keepdims=True), bias - bias.mean()])
    images = np.random.default_rng(2).uniform(0, 1, (3, SIZE, SIZE, 3)).astype(np.float32)
    for c in range(4):
        expected = grad_cam(linear, images, class_index=c)
        assert expected.max() > 0
        assert np.allclose(grad_cam(model, images, class_index=c), expected, atol=1e-4)
