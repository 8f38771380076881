"""Run a model of any kind on raw RGB uint8 images: Keras, SavedModel, TFLite or ONNX.

Every runner takes ``uint8 [N, H, W, 3]`` pixels and returns softmax probabilities
``float32 [N, num_classes]``. Keras models carry their normalisation as their first
layer (`keras_resnet.preprocessing`) and exported SavedModels, TFLite and ONNX models
carry it too, so every runner only resizes: all see identical input.

TFLite models take images of one size (the model's); `Runner.fit_input` resizes
other images on the host with ``resize_for_eval`` (rounded back to uint8).

A SavedModel is a program, not data: loading and running one runs its TensorFlow
graph, which can read and write files. ``.keras`` files are loaded in Keras' safe mode
(no Lambda code), but nothing comparable exists for SavedModels, so load only
SavedModels you trust. `load_runner` prints a one-line notice when a SavedModel
does not carry the files ``kresnet export`` writes into its directory
(`savedmodel_notice`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from keras_resnet import runs
from keras_resnet.textsafe import printable

log = logging.getLogger(__name__)

SAVED_MODEL_FILE = "saved_model.pb"
SERVING_SIGNATURE = "serving_default"
BYTES_SIGNATURE = "serve_bytes"
INPUT_NAME = "images"
BYTES_INPUT_NAME = "image_bytes"
PROBABILITIES = "probabilities"
#: Files ``kresnet export --format savedmodel`` writes inside the SavedModel directory
#: (`keras_resnet.export.exporter`: the parity report and the preprocessing record).
KRESNET_SAVEDMODEL_FILES = ("parity.json", runs.PREPROCESSING_FILE)


def savedmodel_notice(path: str | os.PathLike) -> str | None:
    """The notice for a SavedModel ``kresnet export`` did not write (none of its files inside), else None.

    Args:
        path: A SavedModel directory.

    Returns:
        One line saying that the SavedModel is a program from elsewhere, or None.
    """
    path = Path(path)
    if any((path / name).is_file() for name in KRESNET_SAVEDMODEL_FILES):
        return None
    return (
        f"Notice: SavedModel {printable(path)} was not written by `kresnet export` (no "
        f"{' or '.join(KRESNET_SAVEDMODEL_FILES)} in it); a SavedModel is a program that runs as it is "
        "loaded and called: load only SavedModels you trust."
    )


def fit_to_size(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A uint8 image [H, W, 3] at ``size`` (height, width).

    Returned unchanged when it already has that size; otherwise resized with
    `keras_resnet.data.preprocess.resize_for_eval` and rounded back to uint8.
    """
    if tuple(image.shape[:2]) == tuple(size):
        return image
    import tensorflow as tf

    from keras_resnet.data.preprocess import resize_for_eval

    resized = resize_for_eval(tf.constant(image), tuple(size))
    return np.clip(np.round(np.asarray(resized)), 0, 255).astype(np.uint8)


class Runner:
    """Common interface: ``predict(uint8 [N,H,W,3]) -> float32 [N,C]``.

    Attributes:
        kind: "keras", "savedmodel" or "tflite".
        path: The model file or directory.
        labels: Class names in index order.
        input_size: (height, width) the runner requires, or None for any size.
    """

    kind = "?"

    def __init__(self, path: Path, labels: list[str], input_size: tuple[int, int] | None):
        self.path = Path(path)
        self.labels = labels
        self.input_size = input_size

    def predict(self, images: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        """Probabilities for a batch of uint8 images."""
        raise NotImplementedError

    def fit_input(self, image: np.ndarray) -> np.ndarray:
        """The uint8 image this runner actually takes for ``image`` ([H, W, 3]).

        Unchanged unless the runner needs a fixed size the image does not have;
        then it is resized with ``resize_for_eval`` and rounded to uint8.
        """
        return image if self.input_size is None else fit_to_size(image, self.input_size)

    def predict_many(self, images: list[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """Probabilities for a list of images of any sizes, batched by size.

        Args:
            images: uint8 arrays [H, W, 3].
            batch_size: Largest batch handed to `predict`.

        Returns:
            float32 [len(images), num_classes], in the order given.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size!r}")
        fitted = [self.fit_input(np.asarray(img, dtype=np.uint8)) for img in images]
        out = np.zeros((len(fitted), len(self.labels)), np.float32)
        by_shape: dict[tuple, list[int]] = {}
        for i, img in enumerate(fitted):
            by_shape.setdefault(img.shape, []).append(i)
        for indices in by_shape.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                out[chunk] = self.predict(np.stack([fitted[i] for i in chunk]))
        return out


class KerasRunner(Runner):
    """A Keras model taking raw RGB pixels (it carries its preprocessing; see `keras_resnet.runs.load_run`)."""

    kind = "keras"

    def __init__(self, model, labels: list[str], path: Path | str = "<memory>"):
        super().__init__(Path(path), labels, None)
        self.model = model
        shape = model.inputs[0].shape
        self.model_size = (int(shape[1]), int(shape[2])) if shape[1] and shape[2] else None

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities: resize to the model's size (`resize_for_eval`), then the model in inference mode."""
        from keras_resnet.data.preprocess import resize_for_eval

        x = np.asarray(images, np.uint8)
        if self.model_size is not None:
            x = resize_for_eval(x, self.model_size)
        return np.asarray(self.model(x, training=False))


class SavedModelRunner(Runner):
    """An exported SavedModel, through its ``serving_default`` signature."""

    kind = "savedmodel"

    def __init__(self, path: Path | str, labels: list[str] | None = None):
        import tensorflow as tf

        path = Path(path)
        self.loaded = tf.saved_model.load(str(path))
        if SERVING_SIGNATURE not in self.loaded.signatures:
            raise ValueError(
                f"SavedModel {path} has no {SERVING_SIGNATURE!r} signature "
                f"(found {sorted(self.loaded.signatures)}). Export it with `kresnet export --format savedmodel`."
            )
        self.signature = self.loaded.signatures[SERVING_SIGNATURE]
        super().__init__(path, labels if labels is not None else _labels_near(path), None)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities from the ``serving_default`` signature."""
        import tensorflow as tf

        out = self.signature(**{INPUT_NAME: tf.constant(np.asarray(images, np.uint8))})
        return out[PROBABILITIES].numpy()


class TFLiteRunner(Runner):
    """A ``.tflite`` model on the LiteRT interpreter (``ai_edge_litert``)."""

    kind = "tflite"

    def __init__(self, path: Path | str, labels: list[str] | None = None, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No such TFLite model: {path}")
        self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads or os.cpu_count() or 1)
        signatures = self.interpreter.get_signature_list()
        name = SERVING_SIGNATURE if SERVING_SIGNATURE in signatures else next(iter(signatures), None)
        if name is None or INPUT_NAME not in signatures[name]["inputs"]:
            raise ValueError(
                f"TFLite model {path} has no signature taking {INPUT_NAME!r} (found {signatures}). "
                "Export it with `kresnet export --format tflite`."
            )
        self.runner = self.interpreter.get_signature_runner(name)
        detail = self.runner.get_input_details()[INPUT_NAME]
        if detail["dtype"] != np.uint8:
            raise ValueError(f"TFLite model {path} takes {detail['dtype']} input; expected uint8 RGB pixels.")
        height, width = (int(v) for v in detail["shape_signature"][1:3])
        super().__init__(path, labels if labels is not None else _labels_near(path), (height, width))

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities from the interpreter (the batch size is set to the input's)."""
        out = self.runner(**{INPUT_NAME: np.ascontiguousarray(images, np.uint8)})
        return np.array(out[PROBABILITIES], np.float32)


class OnnxRunner(Runner):
    """An ``.onnx`` model on onnxruntime (``pip install "kresnet[onnx]"``; see `keras_resnet.export.onnx`)."""

    kind = "onnx"

    def __init__(
        self, path: Path | str, labels: list[str] | None = None, num_threads: int | None = None, providers=None
    ):
        from keras_resnet.export.onnx import METADATA_LABELS, RUNTIME_MODULES, require

        ort = require(RUNTIME_MODULES, "Running an ONNX model")["onnxruntime"]
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No such ONNX model: {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or os.cpu_count() or 1
        self.session = ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        if INPUT_NAME not in inputs or PROBABILITIES not in outputs:
            raise ValueError(
                f"ONNX model {path} does not take {INPUT_NAME!r} and return {PROBABILITIES!r} "
                f"(inputs {sorted(inputs)}, outputs {outputs}). Export it with `kresnet export --format onnx`."
            )
        detail = inputs[INPUT_NAME]
        if detail.type != "tensor(uint8)":
            raise ValueError(f"ONNX model {path} takes {detail.type} input; expected uint8 RGB pixels.")
        height, width = detail.shape[1:3]
        size = (height, width) if isinstance(height, int) and isinstance(width, int) else None
        if labels is None:
            try:
                labels = _labels_near(path)
            except FileNotFoundError:
                stored = self.session.get_modelmeta().custom_metadata_map.get(METADATA_LABELS)
                if stored is None:
                    raise
                import json

                labels = json.loads(stored)
        super().__init__(path, labels, size)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities from onnxruntime."""
        out = self.session.run([PROBABILITIES], {INPUT_NAME: np.ascontiguousarray(images, np.uint8)})
        return np.asarray(out[0], np.float32)


def _labels_near(path: Path) -> list[str]:
    """labels.txt inside a model directory or beside a model file."""
    for folder in ([path] if path.is_dir() else []) + [path.parent]:
        if (folder / runs.LABELS_FILE).is_file():
            return runs.read_labels(folder)
    raise FileNotFoundError(
        f"No {runs.LABELS_FILE} found for {path} (looked in {path if path.is_dir() else path.parent}). "
        "Exported models keep their labels.txt beside them; copy it along with the model."
    )


def load_keras_runner(path: str | os.PathLike) -> KerasRunner:
    """A `KerasRunner` from a run directory or a ``.keras`` file (see `keras_resnet.runs.load_run`).

    Raises:
        FileNotFoundError: naming the missing file.
    """
    run = runs.load_run(path)
    return KerasRunner(run.model, run.labels, run.model_path)


def model_kind(path: str | os.PathLike) -> str:
    """Which runner a path needs: "keras", "savedmodel", "tflite" or "onnx".

    Args:
        path: A run directory, ``.keras`` file, SavedModel directory, ``.tflite`` or ``.onnx`` file.

    Raises:
        FileNotFoundError: if it does not exist.
        ValueError: if it is none of those.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such model file or directory: {path}")
    if path.is_dir():
        if (path / SAVED_MODEL_FILE).is_file():
            return "savedmodel"
        if (path / runs.MODEL_FILE).is_file():
            return "keras"
    elif path.suffix == ".keras":
        return "keras"
    elif path.suffix == ".tflite":
        return "tflite"
    elif path.suffix == ".onnx":
        return "onnx"
    raise ValueError(
        f"Cannot tell what kind of model {path} is. Expected a run directory (with {runs.MODEL_FILE}), "
        f"a .keras file, a SavedModel directory (with {SAVED_MODEL_FILE}), a .tflite or a .onnx file."
    )


def load_runner(path: str | os.PathLike, num_threads: int | None = None) -> Runner:
    """Load any supported model as a `Runner`.

    Args:
        path: A run directory, ``.keras`` file (``preprocessing.json`` and
            ``labels.txt`` beside it), SavedModel directory, ``.tflite`` or ``.onnx``
            file (``labels.txt`` inside/beside the export).
        num_threads: TFLite interpreter / onnxruntime threads (default: all CPU cores).

    Returns:
        A `Runner`.

    Example:
        >>> runner = load_runner("saved_models/run1/export/tflite_int8/model.tflite")
        >>> probs = runner.predict(uint8_images)
    """
    kind = model_kind(path)
    if kind == "keras":
        return load_keras_runner(path)
    if kind == "savedmodel":
        notice = savedmodel_notice(path)
        if notice:
            log.warning(notice)
        return SavedModelRunner(path)
    if kind == "onnx":
        return OnnxRunner(path, num_threads=num_threads)
    return TFLiteRunner(path, num_threads=num_threads)
