"""benchmarks/strided_conv_padding.py: the padding forms against kresnet's layers, the gradients, the shapes
it times and the summary arithmetic (no timing asserted)."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("strided_conv_padding")


def test_pad_valid_and_explicit_compute_what_kresnets_stride_2_layers_compute_and_same_does_not(bench):
    import keras
    import tensorflow as tf

    x = tf.random.stateless_normal([2, 8, 8, 3], seed=[1, 2])
    kernel = tf.random.stateless_normal([3, 3, 3, 4], seed=[3, 4])
    pad = keras.layers.ZeroPadding2D(padding=((1, 1), (1, 1)))
    conv = keras.layers.Conv2D(4, 3, strides=2, padding="valid", use_bias=False)
    conv.build((None, 10, 10, 3))
    conv.kernel.assign(kernel)
    kresnet = conv(pad(x)).numpy()

    np.testing.assert_allclose(bench.convolve("pad_valid", x, kernel).numpy(), kresnet, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bench.convolve("explicit", x, kernel).numpy(), kresnet, rtol=1e-5, atol=1e-5)
    same = bench.convolve("same", x, kernel).numpy()
    assert same.shape == kresnet.shape and np.abs(same - kresnet).max() > 0.1  # the grid moves by a pixel
    with pytest.raises(ValueError, match="form: expected one of pad_valid, explicit, same, got 'reflect'"):
        bench.convolve("reflect", x, kernel)


def test_every_form_returns_the_output_and_both_gradients_and_the_forms_agree(bench):
    outputs = {form: [t.numpy() for t in bench.training_step(form, 8, 4, 6, 2, seed=0)()] for form in bench.FORMS}
    for form, (y, dx, dw) in outputs.items():
        assert (y.shape, dx.shape, dw.shape) == ((2, 4, 4, 6), (2, 8, 8, 4), (3, 3, 4, 6)), form
    for reference, value in zip(outputs["pad_valid"], outputs["explicit"]):
        np.testing.assert_allclose(value, reference, rtol=1e-4, atol=1e-4)


def test_the_timed_shapes_are_the_stride_2_convolutions_of_the_cifar_resnets(bench):
    import keras_resnet as kr

    for depth in (20, 56):
        model = kr.build_resnet(f"resnet{depth}", num_classes=10, input_shape=(32, 32, 3))
        strided = {(layer.input.shape[1] - 2, layer.input.shape[-1], layer.filters)
                   for layer in model.layers if type(layer).__name__ == "Conv2D" and layer.strides[0] == 2}
        assert strided == set(bench.CIFAR_STRIDED)


def test_summary_takes_medians_and_per_round_ratios_to_pad_valid(bench):
    summary = bench.summarise({"pad_valid": [10.0, 20.0, 30.0], "explicit": [11.0, 18.0, 30.0],
                               "same": [8.0, 16.0, 27.0]})
    assert summary["ms"] == {"pad_valid": 20.0, "explicit": 18.0, "same": 16.0}
    assert summary["ratio_to_pad_valid"]["explicit"] == pytest.approx({"median": 1.0, "min": 0.9, "max": 1.1})
    assert summary["ratio_to_pad_valid"]["same"] == pytest.approx({"median": 0.8, "min": 0.8, "max": 0.9})
    assert summary["ratio_to_pad_valid"]["pad_valid"]["median"] == 1.0
