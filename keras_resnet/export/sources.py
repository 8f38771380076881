"""What an export starts from: the run's model, labels, preprocessing and images.

Held-out images for the parity gate come from the run's test split
(`keras_resnet.data.pipeline.inference_images` on the ``data`` section of the run's
``config.yaml``) or from an image folder; int8 calibration images come from the
un-augmented training split (`representative_images`) or from a folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_resnet import runs


@dataclass
class ExportSource:
    """A trained model with everything an export carries along.

    Attributes:
        model: The Keras model (takes normalised float32 images).
        model_path: The ``.keras`` file it was loaded from.
        run_dir: The folder holding it (``labels.txt``, ``preprocessing.json``, ``config.yaml``).
        spec: Preprocessing spec.
        labels: Class names in index order.
    """

    model: object
    model_path: Path
    run_dir: Path
    spec: dict
    labels: list[str]

    @property
    def image_size(self) -> tuple[int, int]:
        """The model's (height, width)."""
        from keras_resnet.export.serving import image_size_of

        return image_size_of(self.spec)


def model_file_for(path: str | os.PathLike | None, runs_root: str | os.PathLike = runs.DEFAULT_RUNS_ROOT) -> Path:
    """The ``.keras`` file for a run directory, a ``.keras`` file or None (latest run).

    Raises:
        FileNotFoundError: if there is no such run/model.
        ValueError: if ``path`` is a file that is not ``.keras``.
    """
    if path is not None and Path(path).is_file():
        path = Path(path)
        if path.suffix != ".keras":
            raise ValueError(f"Export starts from a run directory or a .keras model. Received: {path}")
        return path
    run_dir = runs.resolve_run_dir(path, runs_root)
    model_file = run_dir / runs.MODEL_FILE
    if not model_file.is_file():
        raise FileNotFoundError(f"No {runs.MODEL_FILE} in {run_dir}. Name a run directory or a .keras file.")
    return model_file


def load_source(path: str | os.PathLike | None = None, runs_root: str | os.PathLike = runs.DEFAULT_RUNS_ROOT) -> ExportSource:
    """Load a run (or a ``.keras`` file with ``labels.txt`` and ``preprocessing.json`` beside it).

    Args:
        path: Run directory, ``.keras`` file, or None for the latest run under ``runs_root``.
        runs_root: Where runs live.

    Returns:
        An `ExportSource`.

    Raises:
        FileNotFoundError: naming a missing model, labels or preprocessing file.
        ValueError: if the labels do not match the model's number of outputs.
    """
    model_file = model_file_for(path, runs_root)
    folder = model_file.parent
    from keras_resnet.data.preprocess import load_preprocessing

    spec = load_preprocessing(folder)
    labels = runs.read_labels(folder)
    import keras

    model = keras.saving.load_model(model_file, compile=False)
    outputs = model.outputs[0].shape[-1]
    if outputs != len(labels):
        raise ValueError(
            f"{folder / runs.LABELS_FILE} lists {len(labels)} classes but {model_file} outputs {outputs}."
        )
    return ExportSource(model=model, model_path=model_file, run_dir=folder, spec=spec, labels=labels)


def run_data_config(run_dir: Path):
    """The ``DataConfig`` of a run (``config.yaml``'s ``data`` section).

    Raises:
        FileNotFoundError: if the run has no ``config.yaml``, saying to pass an image folder.
    """
    config_file = Path(run_dir) / runs.CONFIG_FILE
    if not config_file.is_file():
        raise FileNotFoundError(
            f"No {runs.CONFIG_FILE} in {run_dir} to find the run's data; "
            "pass an image folder instead (--images / --calibration-images)."
        )
    from keras_resnet.train.config import load_config

    return load_config(config_file).data


def collect_images(dataset, count: int | None = None) -> tuple[list[np.ndarray], list[int] | None]:
    """Numpy uint8 images (and int labels) from a dataset.

    Args:
        dataset: Iterable of images or (images, labels); batched [N,H,W,3] or not;
            labels as ints or one-hot.
        count: Stop after this many images (None: all).

    Returns:
        (list of uint8 [H, W, 3], list of int labels or None when there are none).
    """
    images: list[np.ndarray] = []
    labels: list[int] = []
    has_labels = None
    for element in dataset:
        if isinstance(element, (tuple, list)):
            batch, y = element[0], element[1]
            has_labels = True
        else:
            batch, y = element, None
            has_labels = False
        batch = np.asarray(batch)
        y = None if y is None else np.asarray(y)
        if batch.ndim == 3:
            batch = batch[np.newaxis]
            y = None if y is None else y[np.newaxis]
        if y is not None and y.ndim == 2:  # one-hot
            y = y.argmax(-1)
        for i in range(batch.shape[0]):
            images.append(np.clip(np.round(batch[i]), 0, 255).astype(np.uint8) if batch.dtype != np.uint8 else batch[i])
            if y is not None:
                labels.append(int(np.reshape(y, [-1])[i]))
            if count is not None and len(images) >= count:
                return images, (labels if has_labels else None)
    return images, (labels if has_labels else None)


def heldout_images(
    source: ExportSource, count: int, image_dir: str | os.PathLike | None = None
) -> tuple[list[np.ndarray], list[int] | None, str]:
    """Held-out uint8 images (and labels) for the parity gate.

    Args:
        source: The export source (its run's config finds the test split).
        count: How many images.
        image_dir: A folder to use instead (``<class>/*`` sub-folders give labels).

    Returns:
        (images, labels or None, description of where they came from).

    Raises:
        ValueError: if ``count`` < 1 or no image is found.
        FileNotFoundError: if neither a folder nor the run's config is available.
    """
    if count < 1:
        raise ValueError(f"parity_samples must be >= 1. Received: parity_samples={count!r}")
    if image_dir is not None:
        from keras_resnet.export.images import load_labelled_folder

        images, labels = load_labelled_folder(image_dir, source.labels, count)
        return images, labels, str(image_dir)
    from keras_resnet.data.pipeline import inference_images

    images, labels = collect_images(inference_images(run_data_config(source.run_dir), split="test", count=count), count)
    if not images:
        raise ValueError(f"The test split of {source.run_dir / runs.CONFIG_FILE} gave no images for the parity gate.")
    return images, labels, f"test split of {source.run_dir / runs.CONFIG_FILE}"


def calibration_images(
    source: ExportSource, count: int, image_dir: str | os.PathLike | None = None
) -> list[np.ndarray]:
    """Un-augmented training images (uint8) to calibrate int8 quantisation.

    Args:
        source: The export source.
        count: How many images.
        image_dir: A folder to use instead of the run's training split.

    Returns:
        uint8 images [H, W, 3].

    Raises:
        ValueError: if ``count`` < 1 or nothing is found.
    """
    if count < 1:
        raise ValueError(f"representative_samples must be >= 1. Received: representative_samples={count!r}")
    if image_dir is not None:
        from keras_resnet.export.images import load_labelled_folder

        return load_labelled_folder(image_dir, source.labels, count)[0]
    from keras_resnet.data.pipeline import representative_images

    images, _ = collect_images(representative_images(run_data_config(source.run_dir), count), count)
    if not images:
        raise ValueError(f"The training split of {source.run_dir / runs.CONFIG_FILE} gave no calibration images.")
    return images
