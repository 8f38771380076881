"""The parity gate's arithmetic and thresholds (no model needed)."""

import numpy as np
import pytest

from keras_resnet.export.parity import THRESHOLDS, ExportParityError, compare


def _probs(top, n_classes=3, confidence=0.9):
    p = np.full((len(top), n_classes), (1 - confidence) / (n_classes - 1), np.float32)
    p[np.arange(len(top)), top] = confidence
    return p


def test_identical_outputs_pass_every_threshold():
    p = _probs([0, 1, 2, 1])
    for quantize in THRESHOLDS:
        report = compare(p, p.copy(), [0, 1, 2, 0], "tflite", quantize)
        assert report.passed and report.failures == []
        assert report.top1_agreement == 1.0 and report.max_abs_prob_diff == 0.0
        assert report.keras_accuracy == report.artifact_accuracy == 0.75


def test_float32_fails_on_probability_drift_even_when_top1_agrees():
    p = _probs([0, 1, 2, 1])
    q = p + np.array([2e-4, -2e-4, 0], np.float32)
    report = compare(p, q, None, "savedmodel", "none")
    assert not report.passed and report.top1_agreement == 1.0
    assert report.max_abs_prob_diff == pytest.approx(2e-4, rel=1e-3)
    assert any("prob diff" in f for f in report.failures)
    assert compare(p, p + 5e-5, None, "tflite", "none").passed


def test_float16_needs_99_percent_agreement():
    top = np.arange(200) % 3
    flipped = top.copy()
    flipped[:2] = (flipped[:2] + 1) % 3  # 99.0 % agreement: passes
    assert compare(_probs(top), _probs(flipped), None, "tflite", "float16").passed
    flipped[2] = (flipped[2] + 1) % 3  # 98.5 %: fails
    report = compare(_probs(top), _probs(flipped), None, "tflite", "dynamic")
    assert not report.passed and "agreement" in report.failures[0]


def test_int8_is_judged_on_accuracy_within_one_point():
    labels = np.arange(200) % 3
    keras_top = labels.copy()
    keras_top[:20] = (labels[:20] + 1) % 3  # keras 90 %
    worse = keras_top.copy()
    worse[20:22] = (labels[20:22] + 1) % 3  # 89 %: one point down, allowed
    assert compare(_probs(keras_top), _probs(worse), labels, "tflite", "int8").passed
    worse[22] = (labels[22] + 1) % 3  # 88.5 %: fails
    report = compare(_probs(keras_top), _probs(worse), labels, "tflite", "int8")
    assert not report.passed and "accuracy" in report.failures[0]
    better = labels.copy()  # int8 more accurate than keras: never a failure
    assert compare(_probs(keras_top), _probs(better), labels, "tflite", "int8").passed


def test_int8_without_labels_uses_agreement():
    top = np.arange(100) % 3
    other = top.copy()
    other[:2] = (other[:2] + 1) % 3
    report = compare(_probs(top), _probs(other), None, "tflite", "int8")
    assert not report.passed and "no labels" in report.failures[0]


def test_bad_inputs_are_rejected():
    p = _probs([0, 1])
    with pytest.raises(ValueError, match="quantize"):
        compare(p, p, None, "tflite", "int4")
    with pytest.raises(ValueError, match="same shape"):
        compare(p, p[:1], None)
    with pytest.raises(ValueError, match="labels"):
        compare(p, p, [0, 1, 2])


def test_error_message_names_failures_and_rejected_path():
    p = _probs([0, 1])
    report = compare(p, _probs([1, 1]), None, "tflite", "none")
    err = ExportParityError(report, "x/model.tflite.rejected")
    assert "agreement 50.00%" in str(err) and "x/model.tflite.rejected" in str(err)
