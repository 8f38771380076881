"""The one definition of preprocessing: the spec, and the model layer built from it.

A *preprocessing spec* is a small JSON-serialisable dict, saved as
``preprocessing.json`` in every run directory (the run's record)::

    {"mode": "dataset", "mean": [125.3, 123.0, 113.9], "std": [63.0, 62.1, 66.7],
     "image_size": [32, 32]}

``mean`` and ``std`` are per channel in RGB order on the 0..255 scale, so every mode
is one formula, ``(x - mean) / std``:

=========  ==========================================  =================================
mode       mean / std (0..255 scale)                   meaning
=========  ==========================================  =================================
dataset    computed once from the train split          per-channel standardisation
unit       0 / 255                                     [0, 1]
tf         127.5 / 127.5                               [-1, 1] (keras.applications v2)
torch      255*(0.485,0.456,0.406) / 255*(0.229,...)   torchvision ImageNet mean/std
caffe      (123.68, 116.779, 103.939) / 1              BGR mean subtraction (keras v1):
                                                       channels are reversed after it
=========  ==========================================  =================================

**The model carries it.** A trained kresnet model takes raw RGB pixels (uint8, or
floats on the 0..255 scale) at its input size and normalises them itself, as its
first layer: a ``keras.layers.Normalization`` named ``preprocessing`` with the spec's
fixed mean and variance (no weights; float32 even under mixed precision), followed
for mode "caffe" by a channel reversal to BGR (``keras.ops.flip``, a plain
functional-graph op that ``.keras`` files store without custom objects). This is
keras.applications' own precedent (``include_preprocessing`` in ConvNeXt /
EfficientNetV2). So ``model.predict(raw_pixels)`` is right by construction, tf.data
sends uint8 to the accelerator (a quarter of the bytes of float32), and evaluation,
export and prediction never re-derive statistics. Models saved before this existed
(no ``preprocessing`` layer) are wrapped once by `with_preprocessing` when loaded.

This module sits at the bottom of the package's layers (Keras is imported only
inside the functions that build layers), so models, data, runs and export all read
the one definition.

Example:
    >>> spec = make_spec("dataset", 32, mean=[125.3, 123.0, 113.9], std=[63.0, 62.1, 66.7])
    >>> model = build_resnet("resnet20", num_classes=10, include_preprocessing=True, preprocessing=spec)
    >>> model.predict(uint8_images)
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import get_args

from keras_resnet.config.data import NormalizationMode

MODES = get_args(NormalizationMode)  # ("dataset", "unit", "caffe", "tf", "torch"): the config's Literal

# Fixed statistics on the 0..255 scale, RGB order.
_FIXED_STATS = {
    "unit": ([0.0, 0.0, 0.0], [255.0, 255.0, 255.0]),
    "tf": ([127.5, 127.5, 127.5], [127.5, 127.5, 127.5]),
    "torch": ([0.485 * 255, 0.456 * 255, 0.406 * 255], [0.229 * 255, 0.224 * 255, 0.225 * 255]),
    "caffe": ([123.68, 116.779, 103.939], [1.0, 1.0, 1.0]),
}


def make_spec(mode: str, image_size, mean=None, std=None) -> dict:
    """Build a preprocessing spec.

    Args:
        mode: One of "dataset", "unit", "caffe", "tf", "torch".
        image_size: ``(height, width)`` or an int for square inputs.
        mean: Per-channel RGB mean on the 0..255 scale; required for "dataset",
            ignored (fixed) otherwise.
        std: Per-channel RGB std on the 0..255 scale; as ``mean``.

    Returns:
        ``{"mode", "mean", "std", "image_size"}``.

    Raises:
        ValueError: for an unknown mode, or "dataset" without mean/std.
    """
    if mode not in MODES:
        raise ValueError(f"Unknown normalization mode. Expected one of {MODES}. Received: mode={mode!r}")
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    if mode == "dataset":
        if mean is None or std is None:
            raise ValueError("normalization 'dataset' needs the train split's mean and std. Received: mean=None or std=None")
        mean = [float(v) for v in mean]
        std = [max(float(v), 1e-3) for v in std]
    else:
        mean, std = _FIXED_STATS[mode]
    return {"mode": mode, "mean": list(mean), "std": list(std), "image_size": [int(image_size[0]), int(image_size[1])]}


def validate_spec(spec: dict) -> dict:
    """Check a spec's keys and values.

    Returns:
        ``spec`` unchanged.

    Raises:
        ValueError: naming the bad key or value.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"A preprocessing spec is a dict. Received: {type(spec).__name__}")
    missing = [k for k in ("mode", "mean", "std", "image_size") if k not in spec]
    if missing:
        raise ValueError(f"Preprocessing spec lacks keys {missing}. Received keys: {sorted(spec)}")
    if spec["mode"] not in MODES:
        raise ValueError(f"Preprocessing spec mode must be one of {MODES}. Received: mode={spec['mode']!r}")
    for key in ("mean", "std"):
        values = spec[key]
        if not isinstance(values, (list, tuple)) or len(values) != 3:
            raise ValueError(f"Preprocessing spec {key} needs 3 values (RGB). Received: {key}={values!r}")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise ValueError(f"Preprocessing spec {key} must be finite numbers. Received: {key}={values!r}")
    if any(v <= 0 for v in spec["std"]):
        raise ValueError(f"Preprocessing spec std must be > 0. Received: std={spec['std']!r}")
    size = spec["image_size"]
    if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        raise ValueError(f"Preprocessing spec image_size is [height, width], two positive ints. Received: image_size={size!r}")
    return spec


def save_preprocessing(run_dir: str | os.PathLike, spec: dict) -> Path:
    """Write ``spec`` to ``run_dir/preprocessing.json`` atomically.

    Returns:
        The file's path.
    """
    from keras_resnet.runs import PREPROCESSING_FILE, atomic_write_json

    return atomic_write_json(Path(run_dir) / PREPROCESSING_FILE, validate_spec(spec))


def load_preprocessing(path: str | os.PathLike) -> dict:
    """Read a spec from ``preprocessing.json`` or from the run directory holding it.

    Raises:
        FileNotFoundError: naming the missing file.
        ValueError: if the file is not a valid spec.
    """
    from keras_resnet.runs import PREPROCESSING_FILE

    path = Path(path)
    if path.is_dir():
        path = path / PREPROCESSING_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No preprocessing file at {path}. Expected the preprocessing.json written by training.")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    return validate_spec(spec)


PREPROCESSING_LAYER = "preprocessing"


def resolve_spec(preprocessing, image_size) -> dict:
    """A validated preprocessing spec from a mode name or a spec dict.

    Args:
        preprocessing: A mode name ("unit", "tf", "torch", "caffe") or a spec dict
            (`keras_resnet.preprocessing.make_spec`; mode "dataset" needs one).
        image_size: ``(height, width)`` of the model's images; a spec's own size must match.

    Returns:
        The spec.

    Raises:
        ValueError: an unknown mode, "dataset" given by name (it needs the train
            statistics), or a spec whose size differs from ``image_size``.
    """
    size = [int(image_size[0]), int(image_size[1])]
    if isinstance(preprocessing, str):
        if preprocessing == "dataset":
            raise ValueError(
                "preprocessing='dataset' needs the train split's statistics: pass a spec, e.g. "
                "make_spec('dataset', size, mean, std). Received: preprocessing='dataset'"
            )
        if preprocessing not in MODES:
            raise ValueError(f"preprocessing must be one of {MODES} or a spec dict. Received: preprocessing={preprocessing!r}")
        return make_spec(preprocessing, size)
    spec = validate_spec(preprocessing)
    if list(spec["image_size"]) != size:
        raise ValueError(
            f"The preprocessing spec is for {spec['image_size']} images but the model takes {size}. "
            f"Received: image_size={spec['image_size']!r}"
        )
    return spec


def add_preprocessing(inputs, spec: dict):
    """Apply ``spec``'s normalisation to the functional tensor ``inputs`` (raw 0..255 RGB).

    Args:
        inputs: A symbolic ``[N, H, W, 3]`` tensor (``keras.Input``).
        spec: A preprocessing spec.

    Returns:
        The normalised tensor (BGR for mode "caffe"), float32.
    """
    import keras

    layer = keras.layers.Normalization(
        mean=[float(v) for v in spec["mean"]],
        variance=[float(v) ** 2 for v in spec["std"]],
        name=PREPROCESSING_LAYER,
        dtype="float32",  # normalise in float32 under mixed precision too; the stem casts after
    )
    x = layer(inputs)
    if spec["mode"] == "caffe":
        x = keras.ops.flip(x, axis=-1)
    return x


def has_preprocessing(model) -> bool:
    """True when ``model`` normalises its own input (has a top-level ``preprocessing`` layer)."""
    return any(layer.name == PREPROCESSING_LAYER for layer in model.layers)


def with_preprocessing(model, spec: dict):
    """``model`` taking raw pixels: itself if it already does, else wrapped once.

    A model saved before models carried their preprocessing takes normalised input;
    the wrapper is ``raw pixels -> preprocessing -> model``, so every consumer can
    treat old and new models alike.

    Args:
        model: A functional Keras model.
        spec: The preprocessing spec it was trained with (``preprocessing.json``).

    Returns:
        A model taking raw 0..255 RGB pixels.
    """
    if has_preprocessing(model):
        return model
    import keras

    inputs = keras.Input(shape=tuple(model.inputs[0].shape[1:]), name="image")
    outputs = model(add_preprocessing(inputs, validate_spec(spec)))
    return keras.Model(inputs, outputs, name=model.name)


def spec_of(model) -> dict | None:
    """The preprocessing spec built into ``model``, or None if it has none.

    Mode is recovered from the statistics ("dataset" unless they equal a fixed mode's).

    Args:
        model: A Keras model.

    Returns:
        A spec dict, or None.
    """
    if not has_preprocessing(model):
        return None
    config = model.get_layer(PREPROCESSING_LAYER).get_config()
    mean = [float(v) for v in config["mean"]]
    std = [math.sqrt(float(v)) for v in config["variance"]]
    shape = model.inputs[0].shape
    size = (int(shape[1] or 0), int(shape[2] or 0))
    for mode in ("unit", "tf", "torch", "caffe"):
        fixed = make_spec(mode, size)
        if all(math.isclose(a, b, rel_tol=1e-5) for a, b in zip(mean + std, fixed["mean"] + fixed["std"])):
            return fixed
    return {"mode": "dataset", "mean": mean, "std": std, "image_size": list(size)}


def input_size(model) -> tuple[int, int] | None:
    """``(height, width)`` the model takes, or None when either side is variable."""
    shape = model.inputs[0].shape
    return (int(shape[1]), int(shape[2])) if shape[1] and shape[2] else None


