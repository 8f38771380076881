"""Listing and reading image files; bad files are reported, not fatal."""

import numpy as np
import pytest
from PIL import Image

from keras_resnet.export.images import list_image_files, load_images, load_labelled_folder, read_image


def _folder(tmp_path):
    for cls, color in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.new("RGB", (8, 6), color).save(tmp_path / cls / f"{i}.png")
    Image.new("L", (5, 5), 128).save(tmp_path / "a" / "gray.jpg")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "b" / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    return tmp_path


def test_directories_expand_recursively_to_image_files(tmp_path):
    folder = _folder(tmp_path)
    files = list_image_files([folder, folder / "a" / "0.png"])
    assert len(files) == 8 and files == sorted(files)  # .txt skipped, duplicate dropped
    assert list_image_files([tmp_path / "missing.jpg"]) == [tmp_path / "missing.jpg"]


def test_bad_and_missing_files_become_errors_naming_the_path(tmp_path):
    folder = _folder(tmp_path)
    loaded = load_images(list_image_files([folder]) + [folder / "missing.png"])
    errors = {item.path.name: item.error for item in loaded if item.error}
    assert set(errors) == {"broken.jpg", "missing.png"}
    assert "broken.jpg" in errors["broken.jpg"] and "No such image file" in errors["missing.png"]
    gray = next(item for item in loaded if item.path.name == "gray.jpg")
    assert gray.pixels.shape == (5, 5, 3) and gray.pixels.dtype == np.uint8


def test_read_image_raises_value_error(tmp_path):
    (tmp_path / "x.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match="x.png"):
        read_image(tmp_path / "x.png")


def test_labelled_folder_labels_by_class_name_round_robin(tmp_path):
    folder = _folder(tmp_path)
    images, labels = load_labelled_folder(folder, ["b", "a"], count=4)
    assert labels == [1, 0, 1, 0] and all(img.dtype == np.uint8 for img in images)
    images, labels = load_labelled_folder(folder, ["cat", "dog"])  # sub-folders are not classes
    assert labels is None and len(images) == 7
    with pytest.raises(FileNotFoundError):
        load_labelled_folder(tmp_path / "nope", ["a"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No readable image"):
        load_labelled_folder(tmp_path / "empty", None)


def test_decode_errors_name_the_file_with_a_short_reason_and_no_stray_decoder_lines(tmp_path, capfd):
    """No ``{{function_node __wrapped__DecodeImage...}}`` or ``[Op:DecodeImage]``, no loose libjpeg lines."""
    import io

    noise = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "JPEG")
    data = buffer.getvalue()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40 + b"IEND")
    errors = [item.error for item in load_images([tmp_path / "cut.jpg", tmp_path / "junk.png"])]
    assert errors[0].startswith(f"Cannot decode image {tmp_path / 'cut.jpg'}: jpeg::Uncompress failed.")
    assert "Premature end of JPEG data" in errors[0]  # the decoder's own line, attached to its file
    assert str(tmp_path / "junk.png") in errors[1]
    for error in errors:
        assert "function_node" not in error and "[Op:" not in error and "\n" not in error
    assert "Premature end" not in capfd.readouterr().err


def test_control_characters_in_a_file_name_are_escaped_in_errors(tmp_path):
    path = tmp_path / "evil\x1b[31mred\r.jpg"
    path.write_text("not an image")
    (error,) = [item.error for item in load_images([path])]
    assert "\x1b" not in error and "\r" not in error and "evil\\x1b[31mred\\r.jpg" in error


def test_a_file_that_is_no_supported_image_is_refused_before_decoding(tmp_path):
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (5, 4)).save(buffer, "WEBP")  # TensorFlow would decode it, past any header check
    webp = tmp_path / "x.webp"
    webp.write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match=r"x\.webp: not a JPEG/PNG/GIF/BMP image"):
        read_image(webp)
