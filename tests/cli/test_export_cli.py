"""`kresnet export` and `kresnet predict` through click's CliRunner."""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from tiny_run import tiny_run_fixture

from keras_resnet.cli import main


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny trained run of tests/export (shared through the session's temp dir)."""
    return tiny_run_fixture(tmp_path_factory)


@pytest.fixture(scope="module")
def tflite_model(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_export") / "model.tflite"
    result = CliRunner().invoke(
        main, ["export", str(tiny_run.run_dir), "--format", "tflite", "-o", str(out), "--images", str(tiny_run.heldout)]
    )
    assert result.exit_code == 0, result.output
    assert "top-1 agreement 100.00%" in result.output and f"wrote {out}" in result.output
    return out


def test_export_tflite_writes_artifact_labels_and_report(tflite_model):
    folder = tflite_model.parent
    assert sorted(p.name for p in folder.iterdir()) == ["labels.txt", "model.tflite", "parity.json"]
    assert json.loads((folder / "parity.json").read_text())["passed"] is True


def test_export_failing_the_gate_exits_non_zero_and_sets_artifact_aside(tiny_run, tflite_model, monkeypatch):
    import keras_resnet.export.serving as serving
    from keras_resnet.data.preprocess import resize_for_eval

    monkeypatch.setattr(serving, "resize_for_eval", lambda x, size: resize_for_eval(x, size) / 255.0)  # a broken artifact
    before = tflite_model.read_bytes()
    result = CliRunner().invoke(
        main,
        ["export", str(tiny_run.run_dir), "--format", "tflite", "-o", str(tflite_model), "--images", str(tiny_run.heldout)],
    )
    assert result.exit_code == 1
    assert "Error: Export failed the parity gate" in result.stderr and "model.tflite.rejected" in result.stderr
    assert tflite_model.read_bytes() == before
    assert tflite_model.with_name("model.tflite.rejected").is_file()


def test_export_defaults_to_latest_run(tiny_run, tmp_path):
    run = tmp_path / "saved_models" / "r1"
    run.mkdir(parents=True)
    for name in ("model.keras", "labels.txt", "preprocessing.json"):
        os.link(tiny_run.run_dir / name, run / name)
    result = CliRunner().invoke(
        main,
        ["export", "--format", "keras", "--runs-root", str(tmp_path / "saved_models"), "--images", str(tiny_run.heldout),
         "--parity-samples", "3"],
    )
    assert result.exit_code == 0, result.output
    assert (run / "export" / "keras" / "model.keras").is_file() and "parity on 3 images" in result.output


def test_export_argument_errors_are_clear(tiny_run, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["export", str(tiny_run.run_dir), "--format", "savedmodel", "--quantize", "int8"])
    assert result.exit_code != 0 and "tflite only" in result.stderr
    result = runner.invoke(main, ["export", "--format", "tflite", "--runs-root", str(tmp_path)])
    assert result.exit_code != 0 and "No trained run found" in result.stderr
    assert "Examples" in runner.invoke(main, ["export", "--help"]).output


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_predict_reports_bad_image_and_predicts_the_rest(tiny_run, tflite_model, tmp_path, fmt):
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    result = CliRunner().invoke(
        main, ["predict", str(tflite_model), str(tiny_run.heldout), str(tmp_path / "bad.jpg"), "--top-k", "2", "--format", fmt]
    )
    assert result.exit_code == 0, result.output
    assert "bad.jpg" in result.stderr
    n = len(tiny_run.files)
    if fmt == "json":
        rows = json.loads(result.stdout)
        assert len(rows) == n + 1 and sum("error" in r for r in rows) == 1
        assert all(r["predictions"][0]["label"] == Path(r["path"]).parent.name for r in rows if "predictions" in r)
    elif fmt == "csv":
        assert len(result.stdout.strip().splitlines()) == 1 + 2 * n + 1
    else:
        lines = result.stdout.strip().splitlines()
        assert len(lines) == n and all(Path(line.split()[0]).parent.name == line.split()[1] for line in lines)


def test_predict_exits_non_zero_when_nothing_could_be_predicted(tiny_run, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"garbage")
    result = CliRunner().invoke(main, ["predict", str(tiny_run.run_dir), str(tmp_path / "bad.png")])
    assert result.exit_code == 1 and "None of the 1 images could be classified" in result.stderr
    result = CliRunner().invoke(main, ["predict", str(tiny_run.run_dir), str(tmp_path / "missing_dir") + "/"])
    assert result.exit_code == 1
