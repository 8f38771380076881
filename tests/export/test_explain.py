"""`kresnet predict --explain`: a Grad-CAM picture per image for Keras models; exports are refused, saying why."""

import shutil

import pytest
from click.testing import CliRunner
from PIL import Image

from keras_resnet.cli import main


@pytest.fixture
def photos(tiny_run, tmp_path):
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    shutil.copy(tiny_run.files[0], folder / "cat.jpg")
    shutil.copy(tiny_run.files[-1], folder / "more" / "cat.jpg")  # same name, other folder
    Image.open(tiny_run.files[1]).resize((48, 40)).save(folder / "big.png")  # not the model's size
    return folder


def test_explain_writes_one_picture_per_image(tiny_run, photos, tmp_path):
    out = tmp_path / "cam"
    result = CliRunner().invoke(main, ["predict", str(tiny_run.run_dir), str(photos), "--explain", str(out)])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == ["big.png.gradcam.png", "cat.jpg.gradcam-2.png", "cat.jpg.gradcam.png"]
    assert "Grad-CAM: wrote 3 image(s)" in result.output
    with Image.open(out / "big.png.gradcam.png") as picture:
        assert picture.size[0] > 300  # a figure: the image and the overlay side by side


def test_explain_a_named_class(tiny_run, photos, tmp_path):
    out = tmp_path / "cam"
    result = CliRunner().invoke(main, ["predict", str(tiny_run.run_dir), str(photos / "cat.jpg"), "--explain", str(out),
                                       "--explain-class", "green"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.glob("*.png")] == ["cat.jpg.gradcam.png"]
    result = CliRunner().invoke(main, ["predict", str(tiny_run.run_dir), str(photos), "--explain", str(out),
                                       "--explain-class", "purple"])
    assert result.exit_code == 1 and "Unknown class 'purple'" in result.output and "red, green, blue" in result.output
    result = CliRunner().invoke(main, ["predict", str(tiny_run.run_dir), str(photos), "--explain-class", "green"])
    assert result.exit_code == 2 and "--explain-class needs --explain" in result.output


@pytest.mark.parametrize("kind", ["tflite", "onnx", "savedmodel"])
def test_exported_models_have_no_gradients_and_say_so(kind, photos, tmp_path):
    if kind == "savedmodel":
        model = tmp_path / "savedmodel"
        model.mkdir()
        (model / "saved_model.pb").write_bytes(b"")
    else:
        model = tmp_path / f"model.{kind}"
        model.write_bytes(b"")
    result = CliRunner().invoke(main, ["predict", str(model), str(photos), "--explain", str(tmp_path / "cam")])
    assert result.exit_code == 1
    assert "has no gradients to explain with" in result.output and "run directory or .keras file" in result.output
    assert not (tmp_path / "cam").exists()
