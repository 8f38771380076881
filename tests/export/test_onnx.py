"""ONNX export: uint8 `images` in, `probabilities` out, opset recorded, gated on onnxruntime, predict on .onnx."""

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

import onnx  # noqa: E402

import keras_resnet.export.onnx as onnx_export  # noqa: E402
from keras_resnet.cli import main  # noqa: E402
from keras_resnet.export import ExportParityError, export_model  # noqa: E402
from keras_resnet.export.parity import THRESHOLDS  # noqa: E402
from keras_resnet.export.runners import OnnxRunner, load_keras_runner, load_runner, model_kind  # noqa: E402

MEAN, STD = [120.0, 110.0, 100.0], [60.0, 55.0, 50.0]


def raw_pixel_model(classes=3):
    """A tiny ResNet that takes raw 0..255 pixels: a `preprocessing` Normalization layer first."""
    import keras

    from keras_resnet import build_resnet

    keras.utils.set_random_seed(1)
    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Normalization(mean=MEAN, variance=[s**2 for s in STD], name="preprocessing")(inputs)
    backbone = build_resnet("resnet20", num_classes=classes, width_multiplier=0.25)
    return keras.Model(inputs, backbone(x))


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    model = raw_pixel_model()
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    spec = {"mode": "dataset", "mean": MEAN, "std": STD, "image_size": [32, 32]}
    onnx_export.write_onnx(model, path, (32, 32), labels=["a", "b", "c"], spec=spec)
    return model, path


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """`export_model` of the tiny run to ONNX (through the gate), into its own folder."""
    out = tmp_path_factory.mktemp("onnx_export") / "model.onnx"
    return export_model(tiny_run.run_dir, "onnx", output=out, images=tiny_run.heldout)


def test_graph_takes_uint8_images_and_returns_probabilities_at_the_stated_opset(onnx_file):
    _, path = onnx_file
    proto = onnx.load(str(path))
    [image_input] = proto.graph.input
    [output] = proto.graph.output
    assert image_input.name == "images" and output.name == "probabilities"
    assert image_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_param or d.dim_value for d in image_input.type.tensor_type.shape.dim]
    assert dims == ["batch", 32, 32, 3]
    assert output.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert onnx_export.opset_of(path) == onnx_export.OPSET == 17
    metadata = onnx_export.metadata_of(path)
    assert json.loads(metadata["kresnet.labels"]) == ["a", "b", "c"]
    assert json.loads(metadata["kresnet.preprocessing"])["mean"] == MEAN
    # The writer adds the uint8 input and one Cast, nothing else: no resize in the graph.
    ops = [node.op_type for node in proto.graph.node]
    assert "Resize" not in ops and ops.count("Cast") == 1


def test_onnxruntime_matches_the_keras_model_on_raw_pixels(onnx_file):
    model, path = onnx_file
    pixels = np.random.default_rng(0).integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    runner = OnnxRunner(path)  # no labels.txt beside it: the labels come from the metadata
    assert runner.labels == ["a", "b", "c"] and runner.input_size == (32, 32)
    probs = runner.predict(pixels)
    expected = np.asarray(model(pixels.astype(np.float32), training=False))
    np.testing.assert_allclose(probs, expected, atol=THRESHOLDS["none"].max_prob_diff)
    np.testing.assert_allclose(runner.predict(pixels[:1]), expected[:1], atol=THRESHOLDS["none"].max_prob_diff)
    bigger = np.repeat(np.repeat(pixels[:2], 2, axis=1), 2, axis=2)  # other sizes are resized on the host
    assert runner.predict_many(list(bigger)).shape == (2, 3)


def test_export_passes_the_float32_gate_and_records_the_opset(exported, tiny_run):
    report = exported.report
    assert exported.format == "onnx" and report.passed, report.failures
    assert report.top1_agreement == 1.0 and report.max_abs_prob_diff <= 1e-4
    assert report.thresholds == {"min_agreement": 0.995, "max_prob_diff": 1e-4, "max_accuracy_drop": None}
    folder = exported.path.parent
    assert sorted(p.name for p in folder.iterdir()) == ["labels.txt", "model.onnx", "parity.json"]
    saved = json.loads((folder / "parity.json").read_text())
    assert saved["onnx_opset"] == onnx_export.OPSET and saved["format"] == "onnx" and saved["passed"] is True
    runner = load_runner(exported.path)
    assert isinstance(runner, OnnxRunner) and runner.labels == ["red", "green", "blue"]
    np.testing.assert_allclose(
        runner.predict(tiny_run.images), load_keras_runner(tiny_run.run_dir).predict(tiny_run.images), atol=1e-4
    )


def test_default_output_and_output_suffix(tiny_run, tmp_path):
    from keras_resnet.export.exporter import default_output

    assert default_output("runs/r1", "onnx").as_posix() == "runs/r1/export/onnx/model.onnx"
    with pytest.raises(ValueError, match="'.onnx' file"):
        export_model(tiny_run.run_dir, "onnx", output=tmp_path / "model.tflite")
    with pytest.raises(ValueError, match="tflite only"):
        export_model(tiny_run.run_dir, "onnx", "int8")


def test_model_kind_recognises_onnx(exported):
    assert model_kind(exported.path) == "onnx"


def test_gate_rejects_an_artifact_that_normalises_twice(exported, tiny_run, tmp_path, monkeypatch):
    """A writer that gets the preprocessing wrong (here: applies the normalisation on top of the model's own)."""
    import shutil

    import keras

    real_write = onnx_export.write_onnx

    def broken_write(model, path, image_size, **kwargs):
        inputs = keras.Input((*image_size, 3))
        normalised = keras.layers.Normalization(mean=MEAN, variance=[s**2 for s in STD])(inputs)
        return real_write(keras.Model(inputs, model(normalised)), path, image_size, **kwargs)

    monkeypatch.setattr(onnx_export, "write_onnx", broken_write)
    good = shutil.copy(exported.path, tmp_path / "model.onnx")
    before = good.read_bytes()
    with pytest.raises(ExportParityError, match="parity gate") as err:
        export_model(tiny_run.run_dir, "onnx", output=good, images=tiny_run.heldout)
    assert not err.value.report.passed and "max |prob diff|" in "; ".join(err.value.report.failures)
    assert good.read_bytes() == before  # the good artifact stays put
    assert good.with_name("model.onnx.rejected").is_file()
    assert json.loads(good.with_name("model.onnx.rejected.parity.json").read_text())["onnx_opset"] == onnx_export.OPSET


@pytest.mark.parametrize("missing", ["onnxruntime", "tf2onnx", "onnx"])
def test_missing_onnx_packages_give_a_clear_error(tiny_run, tmp_path, monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # `import <missing>` now raises ImportError
    hint = 'pip install "kresnet[onnx]"'
    with pytest.raises(onnx_export.OnnxDependencyError, match=missing) as err:
        export_model(tiny_run.run_dir, "onnx", output=tmp_path / "model.onnx", images=tiny_run.heldout)
    assert hint in str(err.value) and isinstance(err.value, ImportError)
    assert not (tmp_path / "model.onnx").exists()
    result = CliRunner().invoke(main, ["export", str(tiny_run.run_dir), "--format", "onnx", "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1 and hint in result.stderr and "Traceback" not in result.output


def test_predict_needs_only_onnxruntime_and_says_so(onnx_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    result = CliRunner().invoke(main, ["predict", str(onnx_file[1]), "any.jpg"])
    assert result.exit_code == 1 and 'Running an ONNX model needs onnxruntime' in result.stderr
    assert 'pip install "kresnet[onnx]"' in result.stderr


def test_cli_exports_onnx_and_predict_names_a_class(tiny_run, tmp_path):
    out = tmp_path / "model.onnx"
    result = CliRunner().invoke(
        main, ["export", str(tiny_run.run_dir), "--format", "onnx", "-o", str(out), "--images", str(tiny_run.heldout)]
    )
    assert result.exit_code == 0, result.output
    assert "top-1 agreement 100.00%" in result.output and f"wrote {out}" in result.output
    image = tiny_run.files[0]  # heldout/<class>/imgNNN.jpg
    result = CliRunner().invoke(main, ["predict", str(out), str(image), "--format", "json", "--top-k", "1"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert row["predictions"][0]["label"] == image.parent.name  # the true class, by name
