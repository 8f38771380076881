"""TFLite conversion: float32, float16, dynamic-range and full-integer int8.

The converted model takes raw RGB ``uint8 [N, h, w, 3]`` pixels at the model's image
size (N may be resized at run time) and returns ``probabilities``; the preprocessing
is part of the graph (the Keras model carries it). The path is Keras 3's own:
``ExportArchive`` -> SavedModel -> ``tf.lite.TFLiteConverter.from_saved_model``.

The intermediate SavedModel goes to a ``kresnet-tflite-<owner>-*`` folder in the
temporary directory; `remove_stale_conversion_folders` (called by each TFLite export)
removes those a killed conversion left.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from keras_resnet import runs

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
CONVERSION_PREFIX = "kresnet-tflite-"


def remove_stale_conversion_folders(folder: str | None = None) -> list[Path]:
    """Remove the ``kresnet-tflite-*`` folders killed conversions left in ``folder`` (default: the temp dir).

    A folder of a conversion still running (here or on another machine) is kept: see
    `keras_resnet.runs.is_stale_temporary`.
    """
    return runs.remove_stale_temporaries(folder or tempfile.gettempdir(), (f"{CONVERSION_PREFIX}*",))


def check_quantize(quantize: str) -> str:
    """Validate a quantisation name.

    Raises:
        ValueError: if it is not one of ``QUANTIZATIONS``.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}. Received: quantize={quantize!r}")
    return quantize


def convert_to_tflite(
    model,
    image_size,
    labels: list[str],
    quantize: str = "none",
    representative: Callable[[], Iterable[np.ndarray]] | None = None,
) -> bytes:
    """Convert a Keras model plus its preprocessing to a TFLite flatbuffer.

    Args:
        model: Keras model taking raw RGB pixels of ``image_size`` (it carries its
            preprocessing).
        image_size: ``(height, width)`` of the model's input.
        labels: Class names (checked against the model's outputs).
        quantize: "none" (float32), "float16" (float16 weights), "dynamic"
            (int8 weights, float activations) or "int8" (int8 weights and
            activations; input stays uint8 pixels, output float32 probabilities).
        representative: For "int8": a callable returning an iterable of uint8
            images [h, w, 3] at the model's size (un-augmented training images)
            used to calibrate activation ranges.

    Returns:
        The ``.tflite`` model bytes.

    Raises:
        ValueError: on an unknown ``quantize`` or "int8" without ``representative``.

    Example:
        >>> data = convert_to_tflite(run.model, run.image_size, run.labels, "int8", lambda: calibration_images)
    """
    check_quantize(quantize)
    if quantize == "int8" and representative is None:
        raise ValueError("quantize='int8' needs representative images to calibrate activations. Received: representative=None")
    import tensorflow as tf

    from keras_resnet.export.serving import build_export_archive

    archive = build_export_archive(model, image_size, labels, fixed_size=True)
    with tempfile.TemporaryDirectory(prefix=f"{CONVERSION_PREFIX}{runs.owner_tag()}-") as saved_model_dir:
        archive.write_out(saved_model_dir, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
        if quantize != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantize == "int8":

            def dataset():
                for image in representative():
                    yield [np.asarray(image, np.uint8)[np.newaxis]]

            converter.representative_dataset = dataset
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return converter.convert()
