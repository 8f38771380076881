"""`kresnet calibrate` on a tiny run: the temperature comes from val, the calibrated folder is a run that
evaluates with the same top-1 and exports to TFLite through the parity gate."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from labelled_folder import run_copy, write_folder
from tiny_run import tiny_run_fixture

from keras_resnet import runs
from keras_resnet.cli import main
from keras_resnet.train import calibration
from keras_resnet.train.evaluate import evaluate_run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return tiny_run_fixture(tmp_path_factory)


@pytest.fixture
def run_and_data(tiny_run, tmp_path):
    data = tmp_path / "data"
    write_folder(data, mislabelled=2, train_per_class=20)  # validation: the seeded 10% holdout of train
    return run_copy(tiny_run, tmp_path / "run"), data


def test_calibrate_fits_on_val_only_and_writes_a_calibrated_run(run_and_data, monkeypatch):
    run_dir, data = run_and_data
    fitted_on = []
    real_fit = calibration.fit_temperature
    monkeypatch.setattr(calibration, "fit_temperature", lambda p, y: fitted_on.append(len(y)) or real_fit(p, y))
    result = CliRunner().invoke(main, ["calibrate", str(run_dir), "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    assert "temperature T =" in result.output and "ECE before" in result.output
    out = run_dir / "calibrated"
    record = json.loads((out / "calibration.json").read_text())
    assert record["fitted_on"] == "val" and fitted_on == [record["before"]["val"]["examples"]] == [6]
    assert record["before"]["test"]["examples"] == 14  # 12 + 2 mislabelled: reported, never fitted on
    for split in ("val", "test"):
        assert record["after"][split]["top1"] == record["before"][split]["top1"]
    assert record["after"]["val"]["nll"] <= record["before"]["val"]["nll"]  # the fitted objective
    assert (out / "calibration.png").is_file() and (out / runs.LABELS_FILE).is_file()
    base = evaluate_run(run_dir, data_dir=str(data), write=False)
    calibrated = evaluate_run(out, data_dir=str(data), write=False)
    assert calibrated["top1"] == base["top1"] and calibrated["confusion_matrix"] == base["confusion_matrix"]
    assert calibrated["nll"] == pytest.approx(record["after"]["test"]["nll"], rel=1e-4)


def test_the_calibrated_model_exports_through_the_parity_gate(run_and_data, tiny_run):
    from keras_resnet.export import export_model
    from keras_resnet.export.runners import load_runner

    run_dir, data = run_and_data
    result = calibration.calibrate_run(run_dir, data_dir=str(data))
    exported = export_model(result.output_dir, "tflite", images=tiny_run.heldout)
    assert exported.report.passed and exported.report.samples == len(tiny_run.images)
    keras_probs = load_runner(result.output_dir).predict(tiny_run.images)
    tflite_probs = load_runner(exported.path).predict(tiny_run.images)
    assert np.abs(keras_probs - tflite_probs).max() < 1e-4
    base = load_runner(run_dir).predict(tiny_run.images)
    assert np.allclose(keras_probs, calibration.apply_temperature(base, result.temperature), atol=1e-5)


def test_no_validation_split_is_refused_rather_than_fitting_on_test(tiny_run, tmp_path):
    data = tmp_path / "data"
    write_folder(data, mislabelled=0)
    run_dir = run_copy(tiny_run, tmp_path / "run")
    (run_dir / runs.CONFIG_FILE).write_text(
        f"data:\n  data_dir: {data}\n  dataset: null\n  validation_fraction: 0.0\nmodel:\n  name: resnet20\n"
    )
    result = CliRunner().invoke(main, ["calibrate", str(run_dir)])
    assert result.exit_code == 1
    assert "no validation split" in result.output and "never used for fitting" in result.output
