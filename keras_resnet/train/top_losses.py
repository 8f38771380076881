"""The examples a model gets most wrong: highest per-example loss, as a picture grid and a CSV.

fast.ai's ``plot_top_losses``: during evaluation `TopLosses` keeps the ``n`` examples
with the highest cross-entropy (``-log p_true``, probabilities floored as in
`keras_resnet.train.calibration`), with their raw pixels as the model was fed them
(the model normalises itself, so these are the image as a user sees it, resized to
the model's size). It holds at most ``n`` images at any time, so a 50,000-image
split costs no more memory than a 16-image one. Ties are broken by position in the
split (earlier first), so the choice is deterministic.

`write_top_losses` writes ``top_losses.png`` (a grid: true class, predicted class and
its probability, and the loss under each image) and ``top_losses.csv`` (rank, index
in the split, path, true, predicted, probability, true-class probability, loss). Text
cells that a spreadsheet would read as a formula (leading ``=``, ``+``, ``-``, ``@``,
tab or carriage return) are prefixed with ``'``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_resnet import runs
from keras_resnet.textsafe import safe_cell
from keras_resnet.train.calibration import log_probabilities

DEFAULT_COUNT = 16
TOP_LOSSES_PNG = "top_losses.png"
TOP_LOSSES_CSV = "top_losses.csv"
CSV_COLUMNS = ("rank", "index", "path", "true", "predicted", "probability", "true_probability", "loss")


def example_losses(probabilities, labels) -> np.ndarray:
    """Per-example cross-entropy ``-log p_true`` (float64 [N])."""
    probs = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    return -log_probabilities(probs[np.arange(len(labels)), labels])


def top_loss_indices(probabilities, labels, n: int = DEFAULT_COUNT) -> np.ndarray:
    """Positions of the ``n`` highest-loss examples, highest first (ties: earlier position first).

    Example:
        >>> top_loss_indices(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), np.array([0, 0, 0]), 2)
        array([1, 2])
    """
    losses = example_losses(probabilities, labels)
    order = np.lexsort((np.arange(len(losses)), -losses))
    return order[: max(0, int(n))]


@dataclass
class TopLoss:
    """One high-loss example.

    Attributes:
        index: Position in the evaluated split (dataset order).
        loss: ``-log p_true``.
        true, predicted: Class indices.
        probability: Probability of the predicted class.
        true_probability: Probability of the true class.
        image: The pixels the model was fed (uint8 [H, W, 3] for kresnet data).
    """

    index: int
    loss: float
    true: int
    predicted: int
    probability: float
    true_probability: float
    image: np.ndarray


class TopLosses:
    """Keeps the ``n`` highest-loss examples seen so far; call it once per batch, in order.

    Usable as the ``on_batch`` hook of `keras_resnet.train.evaluate.evaluate_model`.

    Example:
        >>> collector = TopLosses(16)
        >>> evaluate_model(model, dataset, class_names, on_batch=collector)
        >>> rows = collector.rows()
    """

    def __init__(self, n: int = DEFAULT_COUNT):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an integer >= 1. Received: n={n!r}")
        self.n = n
        self.seen = 0
        self._losses = np.zeros([0], np.float64)
        self._index = np.zeros([0], np.int64)
        self._probs = None
        self._labels = np.zeros([0], np.int64)
        self._images = None

    def __call__(self, images, probabilities, labels) -> None:
        images = np.asarray(images)
        probs = np.asarray(probabilities, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.int64)
        count = len(labels)
        index = np.arange(self.seen, self.seen + count)
        self.seen += count
        if self._images is None:
            self._images = images[:0]
            self._probs = probs[:0]
        losses = np.concatenate([self._losses, example_losses(probs, labels)])
        all_index = np.concatenate([self._index, index])
        keep = np.lexsort((all_index, -losses))[: self.n]
        self._losses = losses[keep]
        self._index = all_index[keep]
        self._probs = np.concatenate([self._probs, probs])[keep]
        self._labels = np.concatenate([self._labels, labels])[keep]
        self._images = np.concatenate([self._images, images])[keep]

    def rows(self) -> list[TopLoss]:
        """The kept examples, highest loss first."""
        if self._images is None:
            return []
        return [
            TopLoss(int(i), float(loss), int(y), int(p.argmax()), float(p.max()), float(p[y]), image)
            for i, loss, y, p, image in zip(self._index, self._losses, self._labels, self._probs, self._images)
        ]


def top_losses_csv(rows: list[TopLoss], class_names: list[str], paths: list | None = None) -> str:
    """The CSV text (see the module docstring); ``path`` is empty without ``paths``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for rank, row in enumerate(rows, 1):
        path = paths[row.index] if paths is not None else ""
        writer.writerow([
            rank, row.index, safe_cell(path), safe_cell(class_names[row.true]), safe_cell(class_names[row.predicted]),
            f"{row.probability:.6f}", f"{row.true_probability:.6g}", f"{row.loss:.6f}",
        ])
    return buffer.getvalue()


def write_top_losses(
    rows: list[TopLoss], class_names: list[str], folder: str | Path, paths: list | None = None, title: str = ""
) -> dict:
    """Write ``top_losses.csv`` and ``top_losses.png`` into ``folder``.

    Args:
        rows: `TopLosses.rows`.
        class_names: Names in index order.
        folder: Where to write (a run directory).
        paths: The split's files in dataset order (folder sources), or None.
        title: Title of the picture.

    Returns:
        ``{"csv": path, "png": path}``, or ``{}`` when there are no rows.
    """
    from keras_resnet.plots import plot_image_grid

    if not rows:
        return {}
    folder = Path(folder)
    csv_path = runs.atomic_write_text(folder / TOP_LOSSES_CSV, top_losses_csv(rows, class_names, paths))
    captions = [
        f"true: {class_names[r.true]}\npred: {class_names[r.predicted]} ({r.probability:.2f})\nloss {r.loss:.2f}"
        for r in rows
    ]
    png_path = plot_image_grid([r.image for r in rows], captions, folder / TOP_LOSSES_PNG,
                               title=title or f"Top {len(rows)} losses")
    return {"csv": csv_path, "png": png_path}
