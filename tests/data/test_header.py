"""header.py: sizes read from image headers, the pixel limit, and a decompression bomb refused cheaply everywhere."""

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hostile_files import write_bomb_png
from PIL import Image

from keras_resnet.data.header import (
    ENV_MAX_IMAGE_PIXELS,
    MAX_IMAGE_PIXELS,
    MAX_TRAIN_IMAGE_PIXELS,
    image_header,
    oversize_reason,
    pixel_limit,
)


def _encoded(fmt, size=(37, 21), mode="RGB", **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 0).save(buffer, fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "fmt, mode, kwargs",
    [
        ("JPEG", "RGB", {}),
        ("JPEG", "RGB", {"progressive": True}),
        ("JPEG", "L", {}),
        ("PNG", "RGB", {}),
        ("PNG", "P", {}),
        ("GIF", "RGB", {}),
        ("BMP", "RGB", {}),
    ],
)
def test_header_sizes_of_every_format(fmt, mode, kwargs):
    assert image_header(_encoded(fmt, mode=mode, **kwargs)) == (fmt.lower(), 37, 21)


def test_jpeg_size_found_past_a_large_exif_block(tmp_path):
    exif = Image.Exif()
    exif[0x010E] = "x" * 40000  # ImageDescription: a 40 KB APP1 segment before the frame header
    data = _encoded("JPEG", exif=exif)
    assert len(data) > 40000 and image_header(data) == ("jpeg", 37, 21)
    (tmp_path / "exif.jpg").write_bytes(data)
    with open(tmp_path / "exif.jpg", "rb") as f:  # past the first read of a file: a second pass walks the segments
        assert image_header(f) == ("jpeg", 37, 21)


def test_not_an_image_or_a_cut_header_gives_none():
    assert image_header(b"hello world, not an image") is None
    assert image_header(b"\x89PNG\r\n\x1a\n\x00\x00") is None
    assert image_header(_encoded("JPEG")[:20]) is None  # SOI and part of APP0: no frame header yet


def test_oversize_reason_names_size_limit_and_variable():
    assert oversize_reason(("png", 100, 100), 10_000) is None
    assert oversize_reason(("png", 20000, 20000), None) is None
    reason = oversize_reason(("png", 20000, 20000), MAX_IMAGE_PIXELS)
    assert "20000x20000 = 400.0 Mpixel" in reason and "89.5 Mpixel" in reason and ENV_MAX_IMAGE_PIXELS in reason


def test_pixel_limit_from_the_environment(monkeypatch):
    monkeypatch.delenv(ENV_MAX_IMAGE_PIXELS, raising=False)
    assert pixel_limit(MAX_TRAIN_IMAGE_PIXELS) == 40_000_000 < MAX_IMAGE_PIXELS == pixel_limit(MAX_IMAGE_PIXELS)
    monkeypatch.setenv(ENV_MAX_IMAGE_PIXELS, "1_000")
    assert pixel_limit(MAX_IMAGE_PIXELS) == 1000 == pixel_limit(MAX_TRAIN_IMAGE_PIXELS)
    monkeypatch.setenv(ENV_MAX_IMAGE_PIXELS, "0")
    assert pixel_limit(MAX_IMAGE_PIXELS) is None
    monkeypatch.setenv(ENV_MAX_IMAGE_PIXELS, "lots")
    with pytest.raises(ValueError, match="KRESNET_MAX_IMAGE_PIXELS must be a whole number.*'lots'"):
        pixel_limit(MAX_IMAGE_PIXELS)


_BOMB_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, time
    from pathlib import Path

    import tensorflow as tf

    from keras_resnet.data.check import check_folder, quick_check
    from keras_resnet.data.preprocess import decode_image
    from keras_resnet.data.sources import folder_source
    from keras_resnet.export.images import load_images

    bomb, root = Path(sys.argv[1]), Path(sys.argv[2])
    decode_image(tf.constant(Path(sys.argv[3]).read_bytes()))  # TensorFlow's runtime up before measuring
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    before, start = peak(), time.monotonic()
    out = {
        "predict": load_images([bomb])[0].error,
        "quick_check": quick_check(bomb),
        "check": [issue.format() for issue in check_folder(root).errors],
        "train": [list(item) for item in folder_source(root).bad_files],
    }
    out["seconds"] = time.monotonic() - start
    out["rss_delta"] = peak() - before
    print(json.dumps(out))
    """
)


def test_a_bomb_png_is_refused_before_decoding_in_predict_training_and_data_check(tmp_path, corpus):
    """A 20000x20000 PNG (~50 KB) would decode to 1.2 GB: every entry point refuses it from its header."""
    root = corpus.write_folder(tmp_path / "ds", {"train": {"a": 2, "b": 2}})
    bomb = write_bomb_png(root / "train" / "a" / "bomb.png")
    assert bomb.stat().st_size < 100_000
    env = {k: v for k, v in os.environ.items() if k != ENV_MAX_IMAGE_PIXELS}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    small = root / "train" / "b" / "000.png"
    result = subprocess.run(
        [sys.executable, "-c", _BOMB_SCRIPT, str(bomb), str(root), str(small)],
        capture_output=True, text=True, timeout=600, env=env, cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["rss_delta"] < 500 * 2**20, f"peak memory grew by {out['rss_delta'] / 2**20:.0f} MB"
    assert "bomb.png" in out["predict"] and "too large to decode safely: 20000x20000" in out["predict"]
    assert "89.5 Mpixel" in out["predict"]  # predict's limit is Pillow's
    assert out["quick_check"].startswith("too large to decode safely") and "40.0 Mpixel" in out["quick_check"]
    assert len(out["check"]) == 1 and "bomb.png" in out["check"][0] and "too large" in out["check"][0]
    assert out["train"] == [[str(bomb), out["quick_check"]]]
    assert out["seconds"] < 20


def test_the_limit_follows_the_environment_variable(tmp_path, monkeypatch):
    from keras_resnet.data.check import quick_check
    from keras_resnet.export.images import read_image

    path = tmp_path / "x.jpg"
    path.write_bytes(_encoded("JPEG", size=(40, 30)))
    monkeypatch.setenv(ENV_MAX_IMAGE_PIXELS, "1000")
    assert "40x30" in quick_check(path)
    with pytest.raises(ValueError, match=r"x\.jpg: too large to decode safely: 40x30"):
        read_image(path)
    monkeypatch.setenv(ENV_MAX_IMAGE_PIXELS, "1200")
    assert quick_check(path) is None and read_image(path).shape == (30, 40, 3)
