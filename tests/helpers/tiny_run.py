"""A tiny trained run directory shared by the export and CLI tests (built once per session).

Three clearly separable classes (red, green, blue dominant) of 32x32 images; a
width-0.25 ResNet-20 is fitted for a few epochs so its predictions are confident and
non-trivial. The model carries its preprocessing (it takes raw pixels), as every
trained kresnet model does. The run holds model.keras, labels.txt and
preprocessing.json; beside it
sit ``heldout/<class>/*.jpg`` (parity / prediction images) and ``calib/<class>/*.png``
(training images for int8 calibration).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASSES = ["red", "green", "blue"]
# Every (format, quantize) pair `kresnet export` offers; the export tests build each once.
EXPORTS = [
    ("keras", "none"),
    ("savedmodel", "none"),
    ("tflite", "none"),
    ("tflite", "float16"),
    ("tflite", "dynamic"),
    ("tflite", "int8"),
]


@dataclass
class TinyRun:
    root: Path
    run_dir: Path
    heldout: Path
    calib: Path
    images: np.ndarray  # held-out uint8 pixels as decoded from the JPEG files
    labels: np.ndarray
    files: list


def synthetic_images(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, 32, 32, 3] images whose dominant channel is the class."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for c in range(len(CLASSES)):
        x = rng.integers(0, 110, (per_class, 32, 32, 3))
        x[..., c] += 120 + rng.integers(0, 25, (per_class, 1, 1))
        images.append(x)
        labels += [c] * per_class
    return np.concatenate(images).astype(np.uint8), np.array(labels)


def _write(images, labels, folder: Path, ext: str) -> list[Path]:
    from PIL import Image

    files = []
    for i, (img, y) in enumerate(zip(images, labels)):
        path = folder / CLASSES[y] / f"img{i:03d}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(path, quality=95) if ext == "jpg" else Image.fromarray(img).save(path)
        files.append(path)
    return files


def build_tiny_run(root: Path) -> TinyRun:
    """Train and save the tiny run under ``root`` (reused if already there)."""
    from keras_resnet.data.preprocess import decode_image, make_spec, save_preprocessing
    from keras_resnet.runs import atomic_save_model, write_labels

    run_dir, heldout, calib = root / "run", root / "heldout", root / "calib"
    test_x, test_y = synthetic_images(8, seed=1)
    if not (run_dir / "model.keras").is_file():
        import keras

        from keras_resnet import build_resnet

        train_x, train_y = synthetic_images(40, seed=0)
        spec = make_spec("dataset", (32, 32), train_x.reshape(-1, 3).mean(0), train_x.reshape(-1, 3).std(0))
        keras.utils.set_random_seed(0)
        model = build_resnet("resnet20", num_classes=3, width_multiplier=0.25, include_preprocessing=True, preprocessing=spec)
        model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(train_x, train_y, epochs=6, batch_size=16, shuffle=True, verbose=0)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_save_model(model, run_dir / "model.keras", metadata={"labels": CLASSES, "preprocessing": spec})
        write_labels(run_dir, CLASSES)
        save_preprocessing(run_dir, spec)
        _write(train_x[::4], train_y[::4], calib, "png")
        _write(test_x, test_y, heldout, "jpg")
    files = sorted(heldout.rglob("*.jpg"))
    import tensorflow as tf

    images = np.stack([decode_image(tf.constant(f.read_bytes())).numpy() for f in files])
    labels = np.array([CLASSES.index(f.parent.name) for f in files])
    return TinyRun(root, run_dir, heldout, calib, images, labels, files)


def tiny_run_fixture(tmp_path_factory) -> TinyRun:
    """The session's tiny run, shared between test modules through the session's base temp dir."""
    return build_tiny_run(tmp_path_factory.getbasetemp() / "kresnet_tiny_run")


def legacy_copy(tiny: TinyRun, folder: Path) -> Path:
    """A copy of the tiny run as saved before models carried their preprocessing.

    Its ``model.keras`` takes *normalised* input (the backbone without the
    ``preprocessing`` layer, same weights); ``labels.txt`` and ``preprocessing.json``
    sit beside it, as old runs have them.

    Returns:
        The legacy run directory.
    """
    import shutil

    import keras

    from keras_resnet import build_resnet

    model = keras.saving.load_model(tiny.run_dir / "model.keras", compile=False)
    legacy = build_resnet("resnet20", num_classes=3, width_multiplier=0.25)  # no preprocessing layer
    legacy.set_weights(model.get_weights())  # the preprocessing layer has no weights: same list
    folder.mkdir(parents=True, exist_ok=True)
    legacy.save(folder / "model.keras")
    for name in ("labels.txt", "preprocessing.json"):
        shutil.copy(tiny.run_dir / name, folder / name)
    return folder
