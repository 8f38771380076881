"""Classify image files with any kind of model, and format the results.

`predict_files` reads each file on its own (a bad one becomes an error row naming
its path and the rest go on), batches the readable images by size and runs them
through a `keras_resnet.export.runners.Runner`.
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
      (the CLI prints them to stderr).
    - json: a list of ``{"path", "predictions": [{"label", "index", "probability"}]}``
      or ``{"path", "error"}``.
    - csv: columns path, rank, label, index, probability, error; one row per
      class, one row with ``error`` filled for an unreadable file.

    Raises:
        ValueError: on an unknown ``fmt``.
    """
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"format must be one of {OUTPUT_FORMATS}. Received: format={fmt!r}")
    if fmt == "json":
        rows = [
            {"path": str(p.path), "error": p.error}
            if not p.ok
            else {"path": str(p.path), "predictions": [{"label": l, "index": i, "probability": pr} for l, i, pr in p.top]}
            for p in predictions
        ]
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["path", "rank", "label", "index", "probability", "error"])
        for p in predictions:
            if not p.ok:
                writer.writerow([str(p.path), "", "", "", "", p.error])
            for rank, (label, index, prob) in enumerate(p.top, 1):
                writer.writerow([str(p.path), rank, label, index, f"{prob:.6f}", ""])
        return buffer.getvalue().rstrip("\n")
    rows = [(str(p.path), *(f"{label} ({prob:.3f})" for label, _, prob in p.top)) for p in predictions if p.ok]
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
