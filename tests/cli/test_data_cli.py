"""``kresnet data check``: output and exit code on a clean folder and on the bad-file corpus."""

from click.testing import CliRunner
from PIL import Image

from keras_resnet.cli import main


def _folder(root):
    for split in ("train", "test"):
        for cls, colour in (("cat", (200, 0, 0)), ("dog", (0, 200, 0))):
            (root / split / cls).mkdir(parents=True)
            Image.new("RGB", (8, 8), colour).save(root / split / cls / "0.png")
    return root


def test_clean_folder_exits_zero(tmp_path):
    root = _folder(tmp_path / "ds")
    result = CliRunner().invoke(main, ["data", "check", str(root), "--image-size", "8"])
    assert result.exit_code == 0, result.output
    assert "train: 2 images in 2 classes" in result.output and "0 error(s)" in result.output


def test_bad_files_listed_and_exit_nonzero(tmp_path):
    root = _folder(tmp_path / "ds")
    (root / "train" / "cat" / "empty.jpg").write_bytes(b"")
    (root / "train" / "dog" / "readme.jpg").write_text("not an image")
    jpeg = root / "train" / "dog" / "cut.jpg"
    Image.effect_noise((16, 16), 64).convert("RGB").save(jpeg, "JPEG")
    jpeg.write_bytes(jpeg.read_bytes()[:200])
    result = CliRunner().invoke(main, ["data", "check", str(root)])
    assert result.exit_code == 1
    for name in ("empty.jpg", "readme.jpg", "cut.jpg"):
        assert f"ERROR {root / 'train'}" in result.output and name in result.output
    assert "3 error(s)" in result.output


def test_help_has_examples():
    result = CliRunner().invoke(main, ["data", "check", "--help"])
    assert result.exit_code == 0 and "Examples" in result.output


def test_hostile_names_and_a_bomb_are_reported_escaped_as_training_would_skip_them(tmp_path):
    from hostile_files import png_bytes, write_bomb_png, write_non_utf8_name

    root = _folder(tmp_path / "ds")
    write_non_utf8_name(root / "train" / "cat", png_bytes())
    (root / "train" / "dog" / "evil\x1b[2J.jpg").write_text("not an image")
    write_bomb_png(root / "train" / "dog" / "bomb.png")
    result = CliRunner().invoke(main, ["data", "check", str(root)])
    assert result.exit_code == 1
    assert "bad\\xff\\xfe.png: file name is not valid UTF-8" in result.output
    assert "bomb.png: too large to decode safely: 20000x20000 = 400.0 Mpixel" in result.output
    assert "\x1b" not in result.output and "evil\\x1b[2J.jpg: not a JPEG/PNG/GIF/BMP image" in result.output
    assert "3 error(s)" in result.output


def test_a_bad_pixel_limit_variable_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KRESNET_MAX_IMAGE_PIXELS", "big")
    result = CliRunner().invoke(main, ["data", "check", str(_folder(tmp_path / "ds"))])
    assert result.exit_code == 1 and "KRESNET_MAX_IMAGE_PIXELS must be a whole number" in result.output
    assert "Traceback" not in result.output
