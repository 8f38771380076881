"""The images an export needs: held-out images for the parity gate, calibration images for int8.

An export starts from a `keras_resnet.runs.Run` (the model, taking raw pixels, with
its labels and preprocessing spec). Held-out images come from the run's test split
(`keras_resnet.data.pipeline.inference_images` on the ``data`` section of the run's
``config.yaml``) or from an image folder; int8 calibration images come from the
un-augmented training split (`representative_images`) or from a folder.
"""

from __future__ import annotations

import os

import numpy as np

from keras_resnet import runs


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
    source: runs.Run, count: int, image_dir: str | os.PathLike | None = None
) -> tuple[list[np.ndarray], list[int] | None, str]:
    """Held-out uint8 images (and labels) for the parity gate.

    Args:
        source: The run (its config finds the test split).
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

    images, labels = collect_images(inference_images(source.data_config(), split="test", count=count), count)
    if not images:
        raise ValueError(f"The test split of {source.run_dir / runs.CONFIG_FILE} gave no images for the parity gate.")
    return images, labels, f"test split of {source.run_dir / runs.CONFIG_FILE}"


def calibration_images(
    source: runs.Run, count: int, image_dir: str | os.PathLike | None = None
) -> list[np.ndarray]:
    """Un-augmented training images (uint8) to calibrate int8 quantisation.

    Args:
        source: The run.
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

    images, _ = collect_images(representative_images(source.data_config(), count), count)
    if not images:
        raise ValueError(f"The training split of {source.run_dir / runs.CONFIG_FILE} gave no calibration images.")
    return images
