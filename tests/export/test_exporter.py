"""export_model: every format and quantisation passes the gate; broken or interrupted exports never replace a good one."""

import json
import os
import shutil

import numpy as np
import pytest
from tiny_run import EXPORTS

from keras_resnet.export import ExportParityError, export_model, load_runner
from keras_resnet.export.exporter import default_output, rejected_path


@pytest.mark.parametrize("fmt,quantize", EXPORTS)
def test_every_format_passes_the_gate_with_report_and_labels(exports, tiny_run, fmt, quantize):
    result = exports[(fmt, quantize)]
    assert result.path == default_output(tiny_run.run_dir, fmt, quantize) and result.path.exists()
    folder = result.path if fmt == "savedmodel" else result.path.parent
    assert (folder / "labels.txt").read_text().split() == ["red", "green", "blue"]
    report = json.loads((folder / "parity.json").read_text())
    assert report["passed"] and report["samples"] == len(tiny_run.files)
    assert report["format"] == fmt and report["quantize"] == quantize
    assert report["keras_accuracy"] == 1.0 and report["artifact_accuracy"] >= 0.99
    if quantize == "none":
        assert report["max_abs_prob_diff"] <= 1e-4
    # the artifact itself, reloaded, classifies the held-out images like the labels say
    probs = load_runner(result.path).predict_many(list(tiny_run.images))
    assert (probs.argmax(1) == tiny_run.labels).mean() >= 0.99
    assert not [p for p in folder.parent.iterdir() if ".tmp" in p.name]


def test_quantised_tflite_files_are_smaller(exports):
    size = {q: exports[("tflite", q)].report.size_bytes for q in ("none", "float16", "dynamic", "int8")}
    assert size["int8"] < size["float16"] < size["none"] and size["dynamic"] < size["none"]


def _copy_good_export(source, output):
    """A previous good export (artifact, labels.txt, parity.json) at ``output``."""
    if source.is_dir():
        shutil.copytree(source, output)
        return
    shutil.copy(source, output)
    for name in ("labels.txt", "parity.json"):
        shutil.copy(source.parent / name, output.parent / name)


def _break_preprocessing(monkeypatch):
    """Artifacts built now scale pixels to [0, 1] before the model (a classic double-normalisation bug)."""
    import keras_resnet.export.serving as serving
    from keras_resnet.data.preprocess import resize_for_eval

    def wrong(images, size):
        return resize_for_eval(images, size) / 255.0

    monkeypatch.setattr(serving, "resize_for_eval", wrong)


@pytest.mark.parametrize("fmt", ["tflite", "savedmodel"])
def test_broken_export_fails_the_gate_and_keeps_the_good_artifact(exports, tiny_run, tmp_path, monkeypatch, fmt):
    output = tmp_path / ("model.tflite" if fmt == "tflite" else "sm")
    _copy_good_export(exports[(fmt, "none")].path, output)
    report_file = (output if fmt == "savedmodel" else tmp_path) / "parity.json"
    good_report = report_file.read_text()
    good_bytes = output.read_bytes() if fmt == "tflite" else (output / "saved_model.pb").read_bytes()

    _break_preprocessing(monkeypatch)
    with pytest.raises(ExportParityError, match="parity gate") as info:
        export_model(tiny_run.run_dir, fmt, output=output, images=tiny_run.heldout)

    assert not info.value.report.passed and info.value.rejected_path == rejected_path(output)
    assert rejected_path(output).exists()
    assert (output.read_bytes() if fmt == "tflite" else (output / "saved_model.pb").read_bytes()) == good_bytes
    assert report_file.read_text() == good_report  # the good artifact's report is untouched
    rejected_report = (
        rejected_path(output) / "parity.json" if fmt == "savedmodel" else tmp_path / "model.tflite.rejected.parity.json"
    )
    assert json.loads(rejected_report.read_text())["passed"] is False
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_keras_gate_compares_the_reloaded_file_and_can_fail(tiny_run, tmp_path, monkeypatch):
    """The .keras export is checked by reloading the written file: one that lost its preprocessing fails."""
    import keras
    from tiny_run import legacy_copy

    import keras_resnet.export.exporter as exporter

    legacy = legacy_copy(tiny_run, tmp_path / "legacy")  # the backbone alone: takes normalised input

    def save_backbone_only(model, path):
        keras.saving.load_model(legacy / "model.keras", compile=False).save(path)

    monkeypatch.setattr(exporter, "_save_keras", save_backbone_only)
    with pytest.raises(ExportParityError, match="parity gate"):
        export_model(tiny_run.run_dir, "keras", output=tmp_path / "out" / "model.keras", images=tiny_run.heldout)
    assert not (tmp_path / "out" / "model.keras").exists()


def test_interrupted_export_leaves_previous_artifact_and_no_temp_files(exports, tiny_run, tmp_path, monkeypatch):
    import keras_resnet.export.exporter as exporter

    output = tmp_path / "model.tflite"
    _copy_good_export(exports[("tflite", "none")].path, output)
    before = output.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(exporter, "gate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_model(tiny_run.run_dir, "tflite", output=output, images=tiny_run.heldout)
    assert output.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.txt", "model.tflite", "parity.json"]


def test_savedmodel_reexport_replaces_directory(exports, tiny_run):
    path = exports[("savedmodel", "none")].path
    stamp = (path / "saved_model.pb").stat().st_mtime_ns
    export_model(tiny_run.run_dir, "savedmodel", images=tiny_run.heldout, parity_samples=6)
    assert (path / "saved_model.pb").stat().st_mtime_ns != stamp
    assert json.loads((path / "parity.json").read_text())["samples"] == 6
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def test_bad_arguments_fail_before_any_work(tiny_run, tmp_path):
    with pytest.raises(ValueError, match="format must be one of"):
        export_model(tiny_run.run_dir, "pdf")
    with pytest.raises(ValueError, match="tflite only"):
        export_model(tiny_run.run_dir, "savedmodel", "int8")
    with pytest.raises(ValueError, match="'.tflite' file"):
        export_model(tiny_run.run_dir, "tflite", output=tmp_path / "model.bin", images=tiny_run.heldout)
    with pytest.raises(FileNotFoundError, match="config.yaml"):  # no config: held-out images must be named
        export_model(tiny_run.run_dir, "tflite", output=tmp_path / "m.tflite")
    with pytest.raises(FileNotFoundError, match="--calibration-images"):
        export_model(tiny_run.run_dir, "tflite", "int8", output=tmp_path / "m.tflite", images=tiny_run.heldout)
    with pytest.raises(FileNotFoundError, match="No trained run"):
        export_model(None, "tflite", runs_root=tmp_path / "empty")
    assert not (tmp_path / "m.tflite").exists()


def test_latest_run_is_exported_when_no_model_is_named(tiny_run, tmp_path):
    runs_root = tmp_path / "saved_models"
    run = runs_root / "latest"
    run.mkdir(parents=True)
    for name in ("model.keras", "labels.txt", "preprocessing.json"):
        os.link(tiny_run.run_dir / name, run / name)
    result = export_model(None, "keras", images=tiny_run.heldout, parity_samples=3, runs_root=runs_root)
    assert result.path == run / "export" / "keras" / "model.keras"
    assert result.report.samples == 3 and result.report.max_abs_prob_diff == 0.0
    probs = load_runner(result.path).predict(tiny_run.images[:3])
    assert np.allclose(probs.sum(1), 1, atol=1e-5)


def test_held_out_and_calibration_images_come_from_the_run_config(tiny_run, tmp_path):
    """No image folders named: the gate uses the config's test split, int8 the train split."""
    from keras_resnet.train.config import TrainConfig, save_config

    names = ["0_red", "1_green", "2_blue"]  # folder sources sort class names; keep labels.txt in that order
    data_root = tmp_path / "data"
    for split, folder in (("train", tiny_run.calib), ("test", tiny_run.heldout)):
        for old, new in zip(["red", "green", "blue"], names):
            shutil.copytree(folder / old, data_root / split / new)
    run = tmp_path / "run"
    run.mkdir()
    for name in ("model.keras", "preprocessing.json"):
        os.link(tiny_run.run_dir / name, run / name)
    (run / "labels.txt").write_text("\n".join(names) + "\n")
    config = TrainConfig()
    config.data.dataset, config.data.data_dir, config.data.image_size = None, str(data_root), 32
    save_config(config, run / "config.yaml")

    result = export_model(run, "tflite", "int8", parity_samples=10, representative_samples=8)
    assert result.report.samples == 10 and "test split" in result.report.images
    assert result.report.keras_accuracy == 1.0 and result.report.passed
