"""Evaluation metrics on data whose answer is known, and the report/plots."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_resnet.plots import plot_history
from keras_resnet.train.evaluate import evaluate_model, format_report, metrics_from_predictions, write_evaluation


def test_metrics_known_answer():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.5, 0.4, 0.1], [0.2, 0.3, 0.5]])
    labels = np.array([0, 1, 1, 1])
    m = metrics_from_predictions(probs, labels, ["a", "b", "c"])
    assert m["confusion_matrix"] == [[1, 0, 0], [1, 1, 1], [0, 0, 0]]
    assert m["top1"] == pytest.approx(0.5) and m["top5"] == 1.0 and m["top5_k"] == 3
    assert m["per_class"]["a"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert m["per_class"]["b"]["precision"] == 1.0 and m["per_class"]["b"]["recall"] == pytest.approx(1 / 3)
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["loss"] == pytest.approx(-np.mean(np.log([0.7, 0.6, 0.4, 0.3])))


def test_evaluate_model_with_a_model_whose_predictions_are_known(tmp_path):
    # Softmax of the input itself: the predicted class is the argmax of each row.
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Activation("softmax")(inputs))
    x = np.array([[5, 0, 0, 0], [0, 5, 0, 0], [0, 0, 5, 0], [0, 0, 0, 5], [5, 0, 0, 0], [0, 0, 0, 5]], "float32")
    labels = np.array([0, 1, 2, 3, 1, 2])
    dataset = tf.data.Dataset.from_tensor_slices((x, np.eye(4, dtype="float32")[labels])).batch(4)
    m = evaluate_model(model, dataset, ["w", "x", "y", "z"])
    assert m["num_examples"] == 6 and m["top1"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"][1] == [1, 1, 0, 0] and m["confusion_matrix"][2] == [0, 0, 1, 1]
    report = format_report(m)
    assert "top-1 0.6667" in report and report.splitlines()[-1].startswith("z")
    write_evaluation(tmp_path, m, "test", {"model": "m.keras"})
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["split"] == "test" and saved["top1"] == pytest.approx(4 / 6)
    assert (tmp_path / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"


def test_plot_history_and_errors(tmp_path):
    rows = [{"epoch": "1", "loss": "1.0", "val_loss": "1.2", "accuracy": "0.4", "val_accuracy": "0.3",
             "learning_rate": "0.1"}, {"epoch": "2", "loss": "0.8", "val_loss": "", "accuracy": "0.5",
                                       "val_accuracy": "", "learning_rate": "0.05"}]
    assert plot_history(rows, tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="3 classes but 2 class names"):
        metrics_from_predictions(np.ones((2, 3)) / 3, np.array([0, 1]), ["a", "b"])
