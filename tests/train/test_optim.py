"""optim.py: SGD (momentum, Nesterov) and AdamW as configured, weight decay on kernels only, clipnorm.

Each property is checked on the built optimizer and on the effect of one real
``apply_gradients`` step against the update rule written out here.
"""

import dataclasses

import keras
import numpy as np
import pytest

from keras_resnet.train.config import load_config
from keras_resnet.train.optim import build_optimizer, decay_excluded_variables

LR = 0.1


def optimizer_config(**changes):
    return dataclasses.replace(load_config().optimizer, **changes)


def tiny_model():
    """Dense (kernel + bias) -> BatchNorm (gamma, beta; moving statistics not trainable) -> Dense (kernel only)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="dense", bias_initializer="ones")(inputs)
    x = keras.layers.BatchNormalization(name="bn", gamma_initializer="ones", beta_initializer="ones")(x)
    return keras.Model(inputs, keras.layers.Dense(2, use_bias=False, name="out")(x))


def one_step(optimizer, model, grads: dict) -> tuple[dict, dict]:
    """Apply ``grads`` (path -> array; zeros where missing) once; returns (before, after) by variable path."""
    variables = model.trainable_variables
    before = {v.path: np.array(v) for v in variables}
    gradients = [np.asarray(grads.get(v.path, np.zeros(v.shape)), dtype="float32") for v in variables]
    optimizer.apply_gradients(zip(gradients, variables))
    return before, {v.path: np.array(v) for v in variables}


def test_excluded_variables_are_exactly_batchnorm_parameters_and_biases():
    model = tiny_model()
    assert sorted(v.path for v in decay_excluded_variables(model)) == ["bn/beta", "bn/gamma", "dense/bias"]
    resnet = __import__("keras_resnet").build_resnet("resnet20", num_classes=3, width_multiplier=0.25)
    excluded = {v.path for v in decay_excluded_variables(resnet)}
    expected = {v.path for v in resnet.trainable_variables if v.path.rsplit("/", 1)[-1] in ("gamma", "beta", "bias")}
    assert excluded == expected and any("_bn/" in p for p in excluded) and "predictions/bias" in excluded
    assert not any(v.path.endswith("kernel") for v in decay_excluded_variables(resnet))


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_weight_decay_shrinks_kernels_only(name):
    """Zero gradients: a step is pure decoupled decay, w <- w * (1 - lr * wd), on kernels; BN and biases keep."""
    model = tiny_model()
    optimizer = build_optimizer(optimizer_config(name=name, weight_decay=0.05), LR, model)
    before, after = one_step(optimizer, model, {})
    for path in ("dense/kernel", "out/kernel"):
        np.testing.assert_allclose(after[path], before[path] * (1 - LR * 0.05), rtol=1e-6, atol=1e-7)
    for path in ("dense/bias", "bn/gamma", "bn/beta"):
        np.testing.assert_array_equal(after[path], before[path])


def test_decay_all_variables_and_zero_weight_decay():
    model = tiny_model()
    optimizer = build_optimizer(optimizer_config(weight_decay=0.05, decay_all_variables=True), LR, model)
    before, after = one_step(optimizer, model, {})
    for path in before:
        np.testing.assert_allclose(after[path], before[path] * (1 - LR * 0.05), rtol=1e-6, atol=1e-7)
    model = tiny_model()
    optimizer = build_optimizer(optimizer_config(weight_decay=0.0), LR, model)
    assert not optimizer.weight_decay
    before, after = one_step(optimizer, model, {})
    for path in before:
        np.testing.assert_array_equal(after[path], before[path])


@pytest.mark.parametrize("nesterov", [True, False])
def test_sgd_momentum_and_nesterov_first_steps(nesterov):
    """Keras' rule: v <- m v - lr g; w <- w + v (plain) or w + m v - lr g (Nesterov)."""
    model = tiny_model()
    config = optimizer_config(name="sgd", momentum=0.9, nesterov=nesterov, weight_decay=0.0)
    optimizer = build_optimizer(config, LR, model)
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert optimizer.nesterov is nesterov and optimizer.momentum == 0.9 and optimizer.clipnorm is None
    g = np.full((3,), 0.5, dtype="float32")
    before, after = one_step(optimizer, model, {"dense/bias": g})
    first = -LR * g * (1.9 if nesterov else 1.0)
    np.testing.assert_allclose(after["dense/bias"] - before["dense/bias"], first, rtol=1e-5)
    _, again = one_step(optimizer, model, {"dense/bias": g})
    velocity = 0.9 * (-LR * g) - LR * g
    second = 0.9 * velocity - LR * g if nesterov else velocity
    np.testing.assert_allclose(again["dense/bias"] - after["dense/bias"], second, rtol=1e-5)


def test_adamw_is_built_with_its_settings_and_steps_as_adam_plus_decoupled_decay():
    model = tiny_model()
    config = optimizer_config(name="adamw", weight_decay=0.05, beta_1=0.8, beta_2=0.99, epsilon=1e-6)
    optimizer = build_optimizer(config, LR, model)
    assert isinstance(optimizer, keras.optimizers.AdamW)
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon, optimizer.weight_decay) == (0.8, 0.99, 1e-6, 0.05)
    g_kernel = np.full((4, 3), -2.0, dtype="float32")
    g_bias = np.array([3.0, -1.0, 0.5], dtype="float32")
    before, after = one_step(optimizer, model, {"dense/kernel": g_kernel, "dense/bias": g_bias})
    # first Adam step: lr * g * sqrt(1 - b2) / (sqrt(1 - b2) |g| + eps), i.e. about lr * sign(g)
    def adam(g):
        return -LR * g * np.sqrt(1 - 0.99) / (np.sqrt(1 - 0.99) * np.abs(g) + 1e-6)

    np.testing.assert_allclose(after["dense/kernel"], before["dense/kernel"] * (1 - LR * 0.05) + adam(g_kernel), rtol=1e-5)
    np.testing.assert_allclose(after["dense/bias"], before["dense/bias"] + adam(g_bias), rtol=1e-5)  # no decay
    np.testing.assert_allclose(after["out/kernel"], before["out/kernel"] * (1 - LR * 0.05), rtol=1e-6)


def test_clipnorm_clips_each_gradient_to_the_norm():
    model = tiny_model()
    config = optimizer_config(name="sgd", momentum=0.0, nesterov=False, weight_decay=0.0, clipnorm=1.0)
    optimizer = build_optimizer(config, LR, model)
    assert optimizer.clipnorm == 1.0
    big = np.full((4, 3), 10.0, dtype="float32")  # norm 34.6: scaled to norm 1
    small = np.array([0.3, 0.0, -0.4], dtype="float32")  # norm 0.5: left alone
    before, after = one_step(optimizer, model, {"dense/kernel": big, "dense/bias": small})
    step = after["dense/kernel"] - before["dense/kernel"]
    np.testing.assert_allclose(np.linalg.norm(step), LR * 1.0, rtol=1e-5)
    np.testing.assert_allclose(step, -LR * big / np.linalg.norm(big), rtol=1e-5)
    np.testing.assert_allclose(after["dense/bias"] - before["dense/bias"], -LR * small, rtol=1e-5, atol=1e-8)


def test_unknown_optimizer_is_named():
    with pytest.raises(ValueError, match="optimizer.name='rmsprop'"):
        build_optimizer(optimizer_config(name="rmsprop"), LR, tiny_model())


def test_the_trainer_compiles_with_this_optimizer(tmp_path):
    """compile_model wires build_optimizer in: SGD + Nesterov, BN/bias excluded from decay, the schedule's rate."""
    from synthetic import tiny_config

    from keras_resnet.train.finetune import plan_phases
    from keras_resnet.train.trainer import build_model, compile_model

    config = tiny_config(tmp_path / "run", epochs=2)
    config = dataclasses.replace(config, optimizer=dataclasses.replace(config.optimizer, weight_decay=0.05, clipnorm=2.0))
    model = build_model(config.model, 3, (32, 32))
    compile_model(model, config, plan_phases(config)[0], steps_per_epoch=6)
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.SGD) and optimizer.nesterov and optimizer.clipnorm == 2.0
    lr = float(optimizer.learning_rate)  # the schedule's rate at step 0
    before, after = one_step(optimizer, model, {})
    for path in before:
        if path.endswith("kernel"):
            np.testing.assert_allclose(after[path], before[path] * (1 - lr * 0.05), rtol=1e-5, atol=1e-7)
        else:
            np.testing.assert_array_equal(after[path], before[path])


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_ema_of_the_weights_is_written_into_the_model_at_the_end_of_fit(name):
    """``optimizer.ema_momentum``: after ``fit`` the model holds m-averaged weights of every step (first step: as is)."""
    momentum = 0.9
    model = tiny_model()
    optimizer = build_optimizer(optimizer_config(name=name, ema_momentum=momentum), LR, model)
    assert optimizer.use_ema and optimizer.ema_momentum == momentum
    model.compile(optimizer=optimizer, loss="mse")
    steps = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append([np.array(v) for v in self.model.trainable_variables])

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)).astype("float32"), rng.normal(size=(32, 2)).astype("float32")
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[Record()])
    assert len(steps) == 8
    expected = steps[0]
    for live in steps[1:]:
        expected = [momentum * e + (1 - momentum) * w for e, w in zip(expected, live)]
    for average, final in zip(expected, model.trainable_variables):
        np.testing.assert_allclose(np.array(final), average, rtol=1e-5, atol=1e-6)
    # the average is not just the last step's weights (the dense bias before BatchNorm gets no gradient)
    assert sum(not np.allclose(a, w) for a, w in zip(expected, steps[-1])) >= 4


def test_ema_is_off_by_default():
    assert build_optimizer(optimizer_config(), LR, tiny_model()).use_ema is False
