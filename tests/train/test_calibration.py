"""Calibration: ECE and NLL against values computed by hand, temperature scaling of a deliberately
over-confident model (NLL down, top-1 unchanged), the calibrated Keras model and `calibrate_run`."""

import math

import keras
import numpy as np
import pytest

from keras_resnet.train.calibration import (
    apply_temperature,
    calibrated_model,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability,
)

# Six predictions over three classes; confidences kept off the 1/15 bin edges.
PROBS = np.array([
    [0.95, 0.03, 0.02],  # label 0: right, confidence .95 -> bin 14 (14/15, 1]
    [0.97, 0.02, 0.01],  # label 1: wrong, .97 -> bin 14
    [0.50, 0.30, 0.20],  # label 0: right, .50 -> bin 7 (7/15, 8/15]
    [0.20, 0.45, 0.35],  # label 2: wrong, .45 -> bin 6 (6/15, 7/15]
    [0.12, 0.10, 0.78],  # label 2: right, .78 -> bin 11 (11/15, 12/15]
    [0.34, 0.33, 0.33],  # label 1: wrong, .34 -> bin 5 (5/15, 6/15]
])
LABELS = np.array([0, 1, 0, 2, 2, 1])


def test_ece_of_hand_made_predictions_equals_the_value_computed_by_hand():
    # bin 14: 2 examples, mean confidence .96, accuracy .5 -> |gap| .46; then .5, .45, .22, .34 (one example each)
    by_hand = (2 * 0.46 + 0.50 + 0.45 + 0.22 + 0.34) / 6
    assert by_hand == pytest.approx(0.405)
    assert expected_calibration_error(PROBS, LABELS) == pytest.approx(by_hand, abs=1e-12)
    # one bin: |accuracy - mean confidence| = |3/6 - 3.99/6|
    assert expected_calibration_error(PROBS, LABELS, bins=1) == pytest.approx(abs(0.5 - 3.99 / 6), abs=1e-12)
    table = reliability(PROBS, LABELS)
    assert table["counts"] == [0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 0, 2]
    assert table["confidence"][14] == pytest.approx(0.96) and table["accuracy"][14] == 0.5
    assert table["accuracy"][0] is None


def test_bin_edges_are_upper_inclusive_and_perfect_predictions_have_no_error():
    # confidence exactly 1.0 is in the last bin, 1/3 in bin 4 ((4/15, 5/15]), not bin 5
    assert reliability(np.array([[1.0, 0.0]]), np.array([0]))["counts"][-1] == 1
    assert reliability(np.full((1, 3), 1 / 3), np.array([0]))["counts"][4] == 1
    assert expected_calibration_error(np.eye(4), np.arange(4)) == 0.0


def test_nll_of_hand_made_predictions():
    by_hand = -(math.log(0.95) + math.log(0.02) + math.log(0.50) + math.log(0.35) + math.log(0.78) + math.log(0.33)) / 6
    assert negative_log_likelihood(PROBS, LABELS) == pytest.approx(by_hand, rel=1e-12)
    assert math.isfinite(negative_log_likelihood(np.array([[1.0, 0.0]]), np.array([1])))  # a zero is floored


def sampled_set(n: int, seed: int, classes: int = 5):
    """Logits z and labels drawn from softmax(z): softmax(z) is calibrated by construction."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, (n, classes))
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    labels = np.array([rng.choice(classes, p=row) for row in p])
    return z, labels


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_temperature_scaling_undoes_deliberate_overconfidence_and_keeps_top1():
    val_z, val_y = sampled_set(4000, seed=0)
    test_z, test_y = sampled_set(4000, seed=1)
    overconfident_val, overconfident_test = softmax(3.0 * val_z), softmax(3.0 * test_z)  # logits x3: T should be ~3
    temperature = fit_temperature(overconfident_val, val_y)
    assert temperature == pytest.approx(3.0, rel=0.1)
    calibrated = apply_temperature(overconfident_test, temperature)
    assert negative_log_likelihood(calibrated, test_y) < negative_log_likelihood(overconfident_test, test_y) - 0.2
    assert expected_calibration_error(calibrated, test_y) < expected_calibration_error(overconfident_test, test_y) / 3
    assert (calibrated.argmax(1) == overconfident_test.argmax(1)).all()
    # an under-confident model is sharpened (T < 1), and a calibrated one is left about alone
    assert fit_temperature(softmax(0.5 * val_z), val_y) == pytest.approx(0.5, rel=0.1)
    assert fit_temperature(softmax(val_z), val_y) == pytest.approx(1.0, rel=0.1)


def test_the_fitted_temperature_is_the_nll_minimum():
    val_z, val_y = sampled_set(1000, seed=2)
    probs = softmax(2.0 * val_z)
    t = fit_temperature(probs, val_y)
    best = negative_log_likelihood(apply_temperature(probs, t), val_y)
    for other in (t * 0.9, t * 0.99, t * 1.01, t * 1.1):
        assert best <= negative_log_likelihood(apply_temperature(probs, other), val_y)


def overconfident_keras_model(weights):
    inputs = keras.Input((weights.shape[0],))
    outputs = keras.layers.Dense(weights.shape[1], activation="softmax", use_bias=False, name="predictions")(inputs)
    model = keras.Model(inputs, outputs)
    model.get_layer("predictions").set_weights([4.0 * weights])  # 4x the logits the labels were drawn from
    return model


def test_calibrated_keras_model_saves_loads_in_safe_mode_and_outputs_the_tempered_softmax(tmp_path):
    rng = np.random.default_rng(0)
    weights = rng.normal(0, 1, (6, 4))
    x_val, x_test = rng.normal(0, 1, (2000, 6)), rng.normal(0, 1, (2000, 6))
    y_val = np.array([rng.choice(4, p=row) for row in softmax(x_val @ weights)])
    y_test = np.array([rng.choice(4, p=row) for row in softmax(x_test @ weights)])
    model = overconfident_keras_model(weights)
    val_probs = model.predict(x_val, verbose=0)
    temperature = fit_temperature(val_probs, y_val)
    assert temperature == pytest.approx(4.0, rel=0.15)
    path = tmp_path / "calibrated.keras"
    calibrated_model(model, temperature).save(path)
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)  # no Lambda: safe mode loads it
    test_probs = model.predict(x_test, verbose=0)
    got = loaded.predict(x_test, verbose=0)
    assert np.allclose(got, apply_temperature(test_probs, temperature), atol=1e-5)
    assert (got.argmax(1) == test_probs.argmax(1)).all()
    assert negative_log_likelihood(got, y_test) < negative_log_likelihood(test_probs, y_test)
    assert "temperature" in [layer.name for layer in loaded.layers]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        calibrated_model(overconfident_keras_model(np.ones((2, 2))), 0.0)
    with pytest.raises(ValueError, match="bins must be an integer >= 1"):
        reliability(PROBS, LABELS, bins=0)
    with pytest.raises(ValueError, match="labels must be"):
        expected_calibration_error(PROBS, LABELS[:3])
