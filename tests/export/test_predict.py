"""predict_files agrees across model kinds and reports bad images without stopping."""

import csv
import io
import json
import shutil

import numpy as np
import pytest

from keras_resnet.export.predict import format_predictions, predict_files, predict_paths, top_k
from keras_resnet.export.runners import load_runner, model_kind


@pytest.fixture(scope="module")
def photo_dir(tiny_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for f in tiny_run.files:
        shutil.copy(f, folder / f"{f.parent.name}_{f.name}")
    (folder / "broken.jpg").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return folder


def _kinds(tiny_run, exports):
    return {
        "run": tiny_run.run_dir,
        "keras": exports[("keras", "none")].path,
        "savedmodel": exports[("savedmodel", "none")].path,
        "tflite": exports[("tflite", "none")].path,
        "tflite_int8": exports[("tflite", "int8")].path,
    }


def test_model_kind_recognises_every_artifact(tiny_run, exports, tmp_path):
    kinds = {name: model_kind(path) for name, path in _kinds(tiny_run, exports).items()}
    assert kinds == {"run": "keras", "keras": "keras", "savedmodel": "savedmodel", "tflite": "tflite", "tflite_int8": "tflite"}
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="Cannot tell"):
        model_kind(tmp_path / "model.bin")
    with pytest.raises(FileNotFoundError):
        model_kind(tmp_path / "missing.tflite")


def test_predictions_agree_across_model_kinds(tiny_run, exports, photo_dir):
    results = {name: predict_paths(path, [photo_dir], k=2, batch_size=5) for name, path in _kinds(tiny_run, exports).items()}
    reference = results["run"]
    assert len(reference) == len(tiny_run.files) + 1
    for name, preds in results.items():
        assert [p.path for p in preds] == [p.path for p in reference]
        for p, ref in zip(preds, reference):
            if not ref.ok:
                assert not p.ok
                continue
            assert p.top[0][0] == ref.top[0][0] == p.path.name.split("_")[0], name
            tolerance = 5e-2 if name == "tflite_int8" else 1e-4
            assert abs(p.top[0][2] - ref.top[0][2]) < tolerance, name


def test_bad_image_is_reported_and_the_others_predicted(tiny_run, photo_dir):
    preds = predict_files(load_runner(tiny_run.run_dir), [photo_dir], k=1)
    bad = [p for p in preds if not p.ok]
    assert [p.path.name for p in bad] == ["broken.jpg"] and "broken.jpg" in bad[0].error
    assert sum(p.ok for p in preds) == len(tiny_run.files)


def test_output_formats(tiny_run, photo_dir):
    preds = predict_files(load_runner(tiny_run.run_dir), [photo_dir], k=2)
    rows = json.loads(format_predictions(preds, "json"))
    assert {"path", "error"} == set(next(r for r in rows if "error" in r))
    good = next(r for r in rows if "predictions" in r)
    assert len(good["predictions"]) == 2 and set(good["predictions"][0]) == {"label", "index", "probability"}
    table = list(csv.DictReader(io.StringIO(format_predictions(preds, "csv"))))
    assert len(table) == 2 * len(tiny_run.files) + 1
    assert sum(bool(r["error"]) for r in table) == 1
    lines = format_predictions(preds, "table").splitlines()
    assert len(lines) == len(tiny_run.files) and "(" in lines[0]
    with pytest.raises(ValueError, match="format must be one of"):
        format_predictions(preds, "xml")


def test_top_k_is_sorted_and_capped():
    probs = np.array([[0.1, 0.7, 0.2]])
    assert top_k(probs, ["a", "b", "c"], 10) == [[("b", 1, 0.7), ("c", 2, 0.2), ("a", 0, 0.1)]]
