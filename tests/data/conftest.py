"""Image folders and a tiny TFDS dataset written by the tests (no network, no shared data)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Class i is filled with the colour COLOURS[i], so a label can be read back from its pixels.
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]


def write_image(path: Path, colour, size=8, fmt="PNG", mode="RGB") -> Path:
    """A solid-colour image file (PNG keeps colours exact)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (size, size), tuple(int(c) for c in colour))
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path, fmt)
    return path


def write_folder(root: Path, splits: dict, size=8) -> Path:
    """``splits``: {split: {class: count}}; class k of the sorted names gets COLOURS[k]."""
    names = sorted({c for counts in splits.values() for c in counts})
    for split, counts in splits.items():
        for cls, count in counts.items():
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                write_image(root / split / cls / f"{i:03d}.png", COLOURS[names.index(cls) % len(COLOURS)], size)
    return root


def write_bad_files(class_dir: Path) -> dict:
    """The bad-file corpus: zero bytes, truncated JPEG, text renamed .jpg. Returns {kind: path}."""
    class_dir.mkdir(parents=True, exist_ok=True)
    empty = class_dir / "empty.jpg"
    empty.write_bytes(b"")
    buf = io.BytesIO()
    noise = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype("uint8")
    Image.fromarray(noise).save(buf, "JPEG")
    truncated = class_dir / "truncated.jpg"
    truncated.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    text = class_dir / "notes.jpg"
    text.write_text("this is not an image\n")
    return {"empty": empty, "truncated": truncated, "text": text}


@pytest.fixture
def folder(tmp_path):
    """train: a=6, b=6, c=6; test: a=2, b=2, c=2; 8x8 PNGs."""
    return write_folder(tmp_path / "ds", {"train": {"a": 6, "b": 6, "c": 6}, "test": {"a": 2, "b": 2, "c": 2}})


@pytest.fixture
def unbalanced_folder(tmp_path):
    """train: a=12, b=4, c=2 (no test split)."""
    return write_folder(tmp_path / "unbal", {"train": {"a": 12, "b": 4, "c": 2}})


@pytest.fixture(autouse=True)
def _no_default_data_dir(monkeypatch):
    monkeypatch.delenv("KRESNET_DATA_DIR", raising=False)


@pytest.fixture(scope="session")
def tiny_tfds(tmp_path_factory):
    """A prepared local TFDS dataset "kresnet_tiny_images": 8x8 images, 3 classes, train 9 / test 3."""
    import tensorflow_datasets as tfds

    class KresnetTinyImages(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict(
                    {"image": tfds.features.Image(shape=(8, 8, 3)), "label": tfds.features.ClassLabel(names=["cat", "dog", "emu"])}
                ),
                supervised_keys=("image", "label"),
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(9), "test": self._generate_examples(3, offset=100)}

        def _generate_examples(self, n, offset=0):
            for i in range(n):
                label = i % 3
                image = np.full((8, 8, 3), COLOURS[label], dtype=np.uint8)
                yield offset + i, {"image": image, "label": label}

    data_dir = tmp_path_factory.mktemp("tfds")
    builder = KresnetTinyImages(data_dir=str(data_dir))
    builder.download_and_prepare()
    return str(data_dir)


@pytest.fixture
def corpus():
    """The helper functions above (tests import nothing from conftest: the suite may use importlib mode)."""
    import types

    return types.SimpleNamespace(write_image=write_image, write_folder=write_folder, write_bad_files=write_bad_files, COLOURS=COLOURS)
