"""keras_resnet.compat.fuse_batch_norm: Keras' BatchNorm arithmetic on TensorFlow's fused kernel, saved as plain Keras."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_resnet.compat import fuse_batch_norm, fused_batch_norm_kernel_available

# Both BatchNorm configurations the builders use (models/blocks.py): torch style and keras.applications style.
STYLES = {
    "torch": {"axis": -1, "epsilon": 1e-5, "momentum": 0.9},
    "keras": {"axis": 3, "epsilon": 1.001e-5},
}


@pytest.fixture
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


def conv_bn_model(style, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(5, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn", **STYLES[style])(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(4, dtype="float32", name="head")(x)
    model = keras.Model(inputs, outputs)
    # Non-trivial BatchNorm parameters and statistics, so that each one matters.
    bn = model.get_layer("bn")
    rng = np.random.default_rng(seed)
    bn.set_weights([rng.uniform(0.5, 2.0, 5).astype("float32"), rng.normal(0, 1, 5).astype("float32"),
                    rng.normal(0, 1, 5).astype("float32"), rng.uniform(0.5, 3.0, 5).astype("float32")])
    return model


def twin_models(style):
    keras_model = conv_bn_model(style)
    fused_model = conv_bn_model(style)
    assert fuse_batch_norm(fused_model) == 1
    return keras_model, fused_model


def op_types(model, x, training):
    fn = tf.function(lambda inputs: model(inputs, training=training))
    return {op.type for op in fn.get_concrete_function(tf.TensorSpec(x.shape, tf.float32)).graph.get_operations()}


def as_float(tensors):
    return [np.asarray(tf.cast(t, tf.float32)) for t in tensors]


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"], indirect=True)
def test_training_step_matches_keras_batchnorm(policy, style):
    assert_training_step_matches(policy, style)


def assert_training_step_matches(policy, style):
    """One training step of the fused twin against Keras' layer: outputs, gradients, moving statistics."""
    keras_model, fused_model = twin_models(style)
    x = np.random.default_rng(1).normal(2.0, 3.0, (8, 6, 6, 3)).astype("float32")
    assert "FusedBatchNormV3" in op_types(fused_model, x, True)
    tol = 1e-5 if policy == "float32" else 2e-2
    results = []
    for model in (keras_model, fused_model):
        with tf.GradientTape() as tape:
            y = model(x, training=True)
            loss = tf.reduce_sum(tf.square(y))
        grads = tape.gradient(loss, model.trainable_weights)
        results.append((np.asarray(y), as_float(grads), model.get_layer("bn").get_weights()))
    (y_k, g_k, w_k), (y_f, g_f, w_f) = results
    np.testing.assert_allclose(y_f, y_k, rtol=tol, atol=tol)
    scale = max(np.abs(g).max() for g in g_k)  # the conv bias gradient is ~0 (BatchNorm removes it): rounding noise
    for a, b in zip(g_f, g_k, strict=True):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale)
    # gamma, beta unchanged; moving mean and variance moved the same way (Keras 3 uses the biased batch variance).
    for a, b in zip(w_f, w_k, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5 if policy == "float32" else 1e-2, atol=1e-6)
    assert not np.allclose(w_f[2:], conv_bn_model(style).get_layer("bn").get_weights()[2:])
    np.testing.assert_allclose(as_float([fused_model(x)])[0], as_float([keras_model(x)])[0], rtol=tol, atol=tol)


@pytest.mark.parametrize("style", sorted(STYLES))
def test_the_graph_runs_the_fused_kernel_in_training_and_inference(style):
    keras_model, fused_model = twin_models(style)
    x = np.zeros((2, 6, 6, 3), "float32")
    for training in (True, False):
        assert "FusedBatchNormV3" in op_types(fused_model, x, training)
        assert "FusedBatchNormV3" not in op_types(keras_model, x, training)


def test_a_frozen_layer_normalises_with_its_moving_statistics_and_keeps_them():
    keras_model, fused_model = twin_models("torch")
    for model in (keras_model, fused_model):
        model.get_layer("bn").trainable = False
    x = np.random.default_rng(2).normal(1.0, 2.0, (4, 6, 6, 3)).astype("float32")
    before = fused_model.get_layer("bn").get_weights()
    np.testing.assert_allclose(fused_model(x, training=True), keras_model(x, training=True), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused_model(x, training=True), fused_model(x, training=False), rtol=1e-6)
    for a, b in zip(fused_model.get_layer("bn").get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_fit_trains_the_same_weights_as_keras_batchnorm():
    keras_model, fused_model = twin_models("torch")
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (16, 6, 6, 3)).astype("float32")
    y = rng.integers(0, 4, 16)
    for model in (keras_model, fused_model):
        model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True))
        model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    for a, b in zip(fused_model.get_weights(), keras_model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_inputs_the_kernel_cannot_take_run_keras_own_call():
    inputs = keras.Input((7,))
    outputs = keras.layers.BatchNormalization(name="bn")(keras.layers.Dense(3)(inputs))
    model = keras.Model(inputs, outputs)
    channels_first = keras.Sequential([keras.Input((3, 4, 4)), keras.layers.BatchNormalization(axis=1)])
    assert fuse_batch_norm(model) == 1 and fuse_batch_norm(channels_first) == 1  # counted: the call falls back
    x = np.random.default_rng(4).normal(0, 1, (5, 7)).astype("float32")
    assert "FusedBatchNormV3" not in op_types(model, x, True)
    assert "FusedBatchNormV3" not in op_types(channels_first, np.zeros((2, 3, 4, 4), "float32"), True)
    y = model(x, training=True)
    np.testing.assert_allclose(np.asarray(y).mean(axis=0), 0, atol=1e-5)


def test_saved_model_is_plain_keras_and_fusing_twice_wraps_once(tmp_path):
    from keras_resnet.models import build_resnet

    model = build_resnet("resnet20", num_classes=10, include_preprocessing=True)
    assert fuse_batch_norm(model) == 19  # stem + 18 convolutions of the 9 blocks
    call = model.get_layer("conv1_bn").call
    assert fuse_batch_norm(model) == 19 and model.get_layer("conv1_bn").call == call
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(loaded.get_layer("conv1_bn")) is keras.layers.BatchNormalization
    x = np.random.default_rng(5).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    assert "FusedBatchNormV3" not in op_types(loaded, x, False)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.fixture
def no_bfloat16_kernel(monkeypatch):
    """TensorFlow as on a build without a bfloat16 FusedBatchNormV3 kernel (the probe sees what it would)."""
    real = tf.compat.v1.nn.fused_batch_norm

    def fused_batch_norm(x, *args, **kwargs):
        if x.dtype == tf.bfloat16:
            raise tf.errors.NotFoundError(None, None, "No registered 'FusedBatchNormV3' OpKernel for 'CPU' devices "
                                                      "compatible with node {{node FusedBatchNormV3}}: T=DT_BFLOAT16")
        return real(x, *args, **kwargs)

    fused_batch_norm_kernel_available.cache_clear()
    monkeypatch.setattr(tf.compat.v1.nn, "fused_batch_norm", fused_batch_norm)
    yield
    fused_batch_norm_kernel_available.cache_clear()


def test_the_kernel_probe_answers_per_dtype():
    assert fused_batch_norm_kernel_available("float32") and fused_batch_norm_kernel_available("bfloat16")
    assert not fused_batch_norm_kernel_available("int32") and not fused_batch_norm_kernel_available("float64")


@pytest.mark.parametrize("policy", ["mixed_bfloat16"], indirect=True)
def test_a_dtype_without_a_fused_kernel_runs_keras_own_call(policy, no_bfloat16_kernel):
    assert not fused_batch_norm_kernel_available("bfloat16") and fused_batch_norm_kernel_available("float32")
    keras_model, fused_model = twin_models("torch")
    x = np.random.default_rng(6).normal(0, 1, (4, 6, 6, 3)).astype("float32")
    assert "FusedBatchNormV3" not in op_types(fused_model, x, True)  # tracing does not reach the missing kernel
    for training in (True, False):
        np.testing.assert_array_equal(as_float([fused_model(x, training=training)])[0],
                                      as_float([keras_model(x, training=training)])[0])


@pytest.mark.parametrize(("policy", "expected"), [
    ("mixed_bfloat16", "TensorFlow has no fused kernel for bfloat16 on this machine, so Keras' own layer runs"),
    ("float32", "19 layers run on TensorFlow's fused kernel"),
], indirect=["policy"])
def test_the_trainer_says_when_the_fused_kernel_is_missing(policy, expected, no_bfloat16_kernel):
    from keras_resnet.models import build_resnet
    from keras_resnet.train.config import find_recipe, load_config
    from keras_resnet.train.trainer import prepare_model

    lines = []
    prepare_model(build_resnet("resnet20", num_classes=10), load_config(find_recipe("cifar10_resnet20")), None,
                  log=lines.append)
    assert any(expected in line for line in lines), lines


ONEDNN_OFF_CHILD = """
import keras
import test_compat_fused_batchnorm as t
from tensorflow.python.util import _pywrap_util_port
assert not _pywrap_util_port.IsMklEnabled()  # TensorFlow's own kernels, no oneDNN (private name: a test check only)
keras.mixed_precision.set_global_policy("mixed_bfloat16")
assert t.fused_batch_norm_kernel_available("bfloat16")
t.assert_training_step_matches("mixed_bfloat16", "torch")
print("ok")
"""


def test_bfloat16_runs_fused_with_onednn_off():
    """TF_ENABLE_ONEDNN_OPTS=0 (TensorFlow's own CPU kernels) still has bfloat16 FusedBatchNormV3."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", ONEDNN_OFF_CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
