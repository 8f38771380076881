"""Classify image files with any kind of model, and format the results.

`predict_files` reads each file on its own (a bad one becomes an error row naming
its path and the rest go on), batches the readable images by size and runs them
through a `keras_resnet.export.runners.Runner`. `explain_files` writes a Grad-CAM
picture per classified image (Keras models only: `keras_resnet.models.gradcam`).
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_resnet.export.images import list_image_files, load_images
from keras_resnet.textsafe import printable, safe_cell

OUTPUT_FORMATS = ("table", "json", "csv")


@dataclass
class Prediction:
    """The result for one file.

    Attributes:
        path: The image file.
        top: [(label, class index, probability), ...] best first; empty on error.
        error: Why the file could not be classified, or None.
    """

    path: Path
    top: list[tuple[str, int, float]] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the file was classified."""
        return self.error is None


def top_k(probabilities: np.ndarray, labels: list[str], k: int) -> list[list[tuple[str, int, float]]]:
    """The k most probable classes per row, best first.

    Args:
        probabilities: float [N, C].
        labels: C class names.
        k: How many (capped at C).

    Returns:
        N lists of (label, index, probability).
    """
    k = max(1, min(int(k), probabilities.shape[-1]))
    order = np.argsort(-probabilities, axis=-1, kind="stable")[:, :k]
    return [[(labels[i], int(i), float(row[i])) for i in idx] for row, idx in zip(probabilities, order)]


def predict_files(runner, paths, k: int = 5, batch_size: int = 32) -> list[Prediction]:
    """Classify image files and folders.

    Args:
        runner: A `Runner` (see `keras_resnet.export.runners.load_runner`).
        paths: Image files and/or directories (searched recursively for images).
        k: Classes per image.
        batch_size: Images per model call.

    Returns:
        One `Prediction` per image file, in order; unreadable files carry ``error``.

    Raises:
        ValueError: if ``k`` or ``batch_size`` < 1 (a missing path is an error row).

    Example:
        >>> runner = load_runner("saved_models/run1")
        >>> for p in predict_files(runner, ["photos/"], k=3): print(p.path, p.top[0])
    """
    if k < 1:
        raise ValueError(f"top_k must be >= 1. Received: top_k={k!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size!r}")
    loaded = load_images(list_image_files(paths))
    results = [Prediction(item.path, error=item.error) for item in loaded]
    good = [i for i, item in enumerate(loaded) if item.error is None]
    if good:
        probabilities = runner.predict_many([loaded[i].pixels for i in good], batch_size)
        for i, top in zip(good, top_k(probabilities, runner.labels, k)):
            results[i].top = top
    return results


def format_predictions(predictions: list[Prediction], fmt: str = "table") -> str:
    """Render predictions as an aligned table, JSON or CSV.

    - table: ``path  label (prob)  label (prob) ...``; error rows are left out
      (the CLI prints them to stderr). Control characters in paths and labels are
      escaped (`keras_resnet.textsafe.printable`).
    - json: a list of ``{"path", "predictions": [{"label", "index", "probability"}]}``
      or ``{"path", "error"}`` (JSON escapes control characters itself).
    - csv: columns path, rank, label, index, probability, error; one row per
      class, one row with ``error`` filled for an unreadable file. Text cells have
      control characters escaped and a leading ``= + - @`` neutralised with a ``'``
      (`keras_resnet.textsafe.safe_cell`), so a spreadsheet never runs a file name.

    Raises:
        ValueError: on an unknown ``fmt``.
    """
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"format must be one of {OUTPUT_FORMATS}. Received: format={fmt!r}")
    if fmt == "json":
        rows = [
            {"path": str(p.path), "error": p.error}
            if not p.ok
            else {"path": str(p.path), "predictions": [{"label": name, "index": i, "probability": pr} for name, i, pr in p.top]}
            for p in predictions
        ]
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["path", "rank", "label", "index", "probability", "error"])
        for p in predictions:
            path = safe_cell(printable(p.path))
            if not p.ok:
                writer.writerow([path, "", "", "", "", safe_cell(printable(p.error))])
            for rank, (label, index, prob) in enumerate(p.top, 1):
                writer.writerow([path, rank, safe_cell(printable(label)), index, f"{prob:.6f}", ""])
        return buffer.getvalue().rstrip("\n")
    rows = [(printable(p.path), *(f"{printable(label)} ({prob:.3f})" for label, _, prob in p.top)) for p in predictions if p.ok]
    if not rows:
        return ""
    width = max(len(r[0]) for r in rows)
    return "\n".join("  ".join([r[0].ljust(width), *r[1:]]) for r in rows)


def predict_paths(model: str | os.PathLike, paths, k: int = 5, batch_size: int = 32) -> list[Prediction]:
    """Load ``model`` (run dir, ``.keras``, SavedModel dir or ``.tflite``) and classify ``paths``.

    Returns:
        See `predict_files`.
    """
    from keras_resnet.export.runners import load_runner

    return predict_files(load_runner(model), paths, k, batch_size)


def check_explainable(model: str | os.PathLike) -> None:
    """Raise unless ``model`` is a Keras model (run directory or ``.keras``), the only kind Grad-CAM can use.

    Raises:
        ValueError: for a SavedModel, TFLite or ONNX model, saying why.
    """
    from keras_resnet.export.runners import model_kind

    kind = model_kind(model)
    if kind != "keras":
        names = {"savedmodel": "An exported SavedModel", "tflite": "A TFLite model", "onnx": "An ONNX model"}
        raise ValueError(
            f"{names.get(kind, kind)} has no gradients to explain with: Grad-CAM needs the Keras model's layers "
            f"and gradients. Use --explain with the run directory or .keras file it was exported from. "
            f"Received: {model}"
        )


def explain_files(runner, predictions: list[Prediction], out_dir: str | os.PathLike, class_name: str | None = None) -> list[Path]:
    """Write, per classified image, the image with a Grad-CAM heat map over it.

    The map is of the predicted class, or of ``class_name`` for every image, on the
    model's last convolutional stage; the image is fed exactly as for prediction
    (resized to the model's size) and the map is stretched back over the image at
    its own size. Files are ``OUT_DIR/<image name>.gradcam.png`` (``-2``, ``-3``
    ... added when names repeat).

    Args:
        runner: A `keras_resnet.export.runners.KerasRunner`.
        predictions: `predict_files`' results (error rows are skipped).
        out_dir: Folder to write into (created).
        class_name: A label of the model, or None for each image's predicted class.

    Returns:
        The written PNG paths, in the order of ``predictions``.

    Raises:
        ValueError: a runner without a Keras model, or an unknown ``class_name``.
    """
    from keras_resnet.data.preprocess import resize_for_eval
    from keras_resnet.models.gradcam import grad_cam
    from keras_resnet.plots import plot_gradcam

    model = getattr(runner, "model", None)
    if model is None:
        raise ValueError(f"A {runner.kind} model has no gradients to explain with; Grad-CAM needs a Keras model.")
    if class_name is not None and class_name not in runner.labels:
        shown = ", ".join(runner.labels[:20]) + (" ..." if len(runner.labels) > 20 else "")
        raise ValueError(f"Unknown class {class_name!r}. Expected one of the model's labels: {shown}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, used = [], set()
    for p in predictions:
        if not p.ok:
            continue
        pixels = load_images([p.path])[0].pixels
        x = np.asarray(pixels, np.uint8)[None]
        if runner.model_size is not None and tuple(x.shape[1:3]) != tuple(runner.model_size):
            x = np.asarray(resize_for_eval(x, runner.model_size), np.float32)
        index = runner.labels.index(class_name) if class_name is not None else p.top[0][1]
        probability = float(np.asarray(model.predict_on_batch(x))[0, index])
        heat = grad_cam(model, x, class_index=index)[0]
        stem, n = f"{Path(p.path).name}.gradcam", 1
        while stem + (f"-{n}" if n > 1 else "") in used:
            n += 1
        stem += f"-{n}" if n > 1 else ""
        used.add(stem)
        title = f"{Path(p.path).name}: {runner.labels[index]} ({probability:.3f})"
        written.append(plot_gradcam(pixels, heat, out_dir / f"{stem}.png", title=title))
    return written
