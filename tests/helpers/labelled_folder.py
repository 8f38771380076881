"""An image folder and a run copy for the tiny run (`tiny_run`) whose class folders sort in the model's order.

The tiny run's classes are red, green, blue (in that output order); a folder source
sorts its class folders, so here they are ``a_red``, ``b_green``, ``c_blue`` and the
run copy's ``labels.txt`` says the same.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tiny_run import CLASSES, synthetic_images

NAMES = [f"{letter}_{name}" for letter, name in zip("abc", CLASSES)]


def write_folder(root: Path, mislabelled: int = 3, train_per_class: int = 2, test_per_class: int = 4) -> list[Path]:
    """``root/{train,test}/<class>/*.png``; in test, ``mislabelled`` red images filed as blue.

    Returns:
        The mislabelled files.
    """
    from PIL import Image

    for split, per_class, seed in (("train", train_per_class, 5), ("test", test_per_class, 7)):
        images, labels = synthetic_images(per_class, seed)
        for i, (image, y) in enumerate(zip(images, labels)):
            path = root / split / NAMES[y] / f"{split}{i:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path)
    red, _ = synthetic_images(mislabelled, seed=9)
    wrong = []
    for i in range(mislabelled):
        path = root / "test" / NAMES[2] / f"wrong{i}.png"
        Image.fromarray(red[i]).save(path)  # a red image filed under blue: the loss is high
        wrong.append(path)
    return wrong


def run_copy(tiny_run, folder: Path) -> Path:
    """The tiny run's model and preprocessing record in ``folder``, with ``labels.txt`` = `NAMES`."""
    from keras_resnet import runs

    folder.mkdir(parents=True)
    for name in (runs.MODEL_FILE, runs.PREPROCESSING_FILE):
        shutil.copy(tiny_run.run_dir / name, folder / name)
    runs.write_labels(folder, NAMES)
    return folder
