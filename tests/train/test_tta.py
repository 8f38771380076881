"""Test-time augmentation (``tta="flip"``): the mean of the model's probabilities on each image and on
its mirror image, reported beside the plain figures (never instead), by `evaluate_model`,
`kresnet evaluate --tta flip` and the end-of-training report (``training.tta``)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from synthetic import write_image_folder

from keras_resnet.cli import main
from keras_resnet.train.evaluate import (
    TTA_KEYS,
    evaluate_model,
    format_report,
    metrics_from_predictions,
    tta_probabilities,
    write_evaluation,
)

CLASSES = ["a", "b", "c"]


def asymmetric_model(seed: int = 0) -> keras.Model:
    """Softmax of a fixed random linear map of the flattened 4x6x3 image: left and right count differently."""
    rng = np.random.default_rng(seed)
    inputs = keras.Input((4, 6, 3))
    dense = keras.layers.Dense(3, activation="softmax")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    dense.set_weights([rng.normal(0, 0.5, (4 * 6 * 3, 3)).astype("float32"), np.zeros(3, "float32")])
    return model


def symmetric_model() -> keras.Model:
    """Softmax of a map of the per-channel image means: a mirror image gives the same output."""
    inputs = keras.Input((4, 6, 3))
    dense = keras.layers.Dense(3, activation="softmax")
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(inputs)))
    dense.set_weights([np.array([[2.0, -1.0, 0.5], [-1.0, 2.0, 0.0], [0.3, 0.1, 1.5]], "float32"),
                       np.zeros(3, "float32")])
    return model


def data(n: int = 10, seed: int = 1):
    rng = np.random.default_rng(seed)
    images = rng.normal(0, 1, (n, 4, 6, 3)).astype("float32")
    labels = rng.integers(0, 3, n)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.eye(3, dtype="float32")[labels])).batch(4)  # 4+4+2
    return images, labels, dataset


def test_flip_tta_is_the_mean_of_the_image_and_its_mirror_image(tmp_path):
    model = asymmetric_model()
    images, labels, dataset = data()
    plain = model.predict(images, verbose=0).astype("float64")
    mirrored = model.predict(images[:, :, ::-1, :], verbose=0).astype("float64")  # numpy's own flip of the width
    expected = (plain + mirrored) / 2
    assert np.abs(expected - plain).max() > 0.05  # the model does see left from right: TTA changes the answer

    np.testing.assert_allclose(tta_probabilities(model, tf.constant(images), "flip"), expected, atol=1e-6, rtol=0)

    with_tta = evaluate_model(model, dataset, CLASSES, tta="flip")
    without = evaluate_model(model, dataset, CLASSES)
    assert "tta" not in without
    # the plain figures stay the plain ones, exactly
    assert {k: v for k, v in with_tta.items() if k != "tta"} == without
    assert without["loss"] == pytest.approx(metrics_from_predictions(plain, labels, CLASSES)["loss"], abs=1e-6)
    # the TTA section holds the figures of the numpy mean
    reference = metrics_from_predictions(expected, labels, CLASSES)
    tta = with_tta["tta"]
    assert tta["method"] == "flip" and set(tta) == {"method", *TTA_KEYS}
    for key in TTA_KEYS:
        assert tta[key] == pytest.approx(reference[key], abs=1e-6), key
    assert tta["loss"] != pytest.approx(without["loss"], abs=1e-3)

    report = format_report(with_tta).splitlines()
    assert report[0].startswith("examples 10") and f"top-1 {without['top1']:.4f}" in report[0]
    tta_line = next(line for line in report if line.startswith("TTA flip:"))
    assert f"top-1 {tta['top1']:.4f} ({100 * (tta['top1'] - without['top1']):+.2f} pts vs plain)" in tta_line
    assert f"loss {tta['loss']:.4f}" in tta_line
    assert not any(line.startswith("TTA") for line in format_report(without).splitlines())

    write_evaluation(tmp_path, with_tta, "test", {"model": "m.keras"})
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["top1"] == without["top1"] and saved["tta"] == pytest.approx(tta)


def test_a_mirror_symmetric_model_gains_nothing_from_flip_tta():
    model = symmetric_model()
    _, _, dataset = data(seed=2)
    metrics = evaluate_model(model, dataset, CLASSES, tta="flip")
    for key in TTA_KEYS:
        assert metrics["tta"][key] == pytest.approx(metrics[key], abs=1e-6), key
    assert "(+0.00 pts vs plain)" in format_report(metrics)


def test_unknown_tta_is_refused_before_predicting():
    with pytest.raises(ValueError, match=r"tta must be one of none, flip\. Received: tta='rotate'"):
        evaluate_model(asymmetric_model(), data()[2], CLASSES, tta="rotate")


# --- end of training (training.tta) and kresnet evaluate --tta -----------------------------------

TINY = ["--model", "resnet20", "--batch-size", "4", "--epochs", "1", "--set", "model.width_multiplier=0.25",
        "--set", "training.progress=none", "--set", "training.tensorboard=false",
        "--set", "data.validation_fraction=0.25", "--set", "schedule.warmup_epochs=0"]


@pytest.fixture(scope="module")
def trained_with_tta(tmp_path_factory):
    """A 1-epoch run on an image folder whose classes are vertical stripes (left/right matters), with
    ``training.tta=flip``: (run directory, the command's output)."""
    root = tmp_path_factory.mktemp("tta")
    folder = write_image_folder(root / "images")
    run = root / "run"
    result = CliRunner().invoke(main, ["train", "--data-dir", str(folder), "--run-dir", str(run), *TINY,
                                       "--set", "training.tta=flip"])
    assert result.exit_code == 0, result.output
    return run, result.output


def test_training_with_tta_reports_it_beside_the_plain_figures(trained_with_tta):
    run, output = trained_with_tta
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_examples"] == 6
    assert metrics["tta"]["method"] == "flip" and set(metrics["tta"]) == {"method", *TTA_KEYS}
    assert f"top-1 {metrics['top1']:.4f}" in output and f"TTA flip: top-1 {metrics['tta']['top1']:.4f}" in output


def test_evaluate_cli_with_tta_flip(trained_with_tta):
    run, _ = trained_with_tta
    plain = CliRunner().invoke(main, ["evaluate", str(run), "--top-losses", "0"])
    assert plain.exit_code == 0, plain.output
    assert "TTA" not in plain.output and "tta" not in json.loads((run / "metrics.json").read_text())

    result = CliRunner().invoke(main, ["evaluate", str(run), "--tta", "flip", "--top-losses", "0"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    summary = next(line for line in result.output.splitlines() if line.startswith("examples 6"))
    assert f"top-1 {metrics['top1']:.4f}" in summary and f"loss {metrics['loss']:.4f}" in summary
    assert f"TTA flip: top-1 {metrics['tta']['top1']:.4f}" in result.output
    assert metrics["tta"]["method"] == "flip" and set(metrics["tta"]) == {"method", *TTA_KEYS}
    assert metrics["tta"]["loss"] != metrics["loss"]  # the stripes are not mirror-symmetric
    plain_summary = next(line for line in plain.output.splitlines() if line.startswith("examples 6"))
    assert plain_summary == summary  # the plain figures are the same with and without --tta

    refused = CliRunner().invoke(main, ["evaluate", str(run), "--tta", "rotate"])
    assert refused.exit_code == 2 and "'rotate' is not one of 'none', 'flip'" in refused.output
    assert "--tta [none|flip]" in CliRunner().invoke(main, ["evaluate", "--help"]).output
