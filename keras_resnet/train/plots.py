"""PNG plots of a run: training curves and the confusion matrix (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

CURVES_FILE = "training_curves.png"
CONFUSION_FILE = "confusion_matrix.png"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_png(plt, fig, path: str | Path) -> Path:
    """Lay out ``fig``, write it atomically as a PNG at ``path`` and free it."""
    from keras_resnet.runs import atomic_path

    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def plot_history(rows: list[dict], path: str | Path) -> Path:
    """Plot loss, accuracy and learning rate per epoch (train and validation) to a PNG.

    Args:
        rows: ``history.csv`` rows (`keras_resnet.train.callbacks.read_history`).
        path: The PNG file to write.

    Returns:
        ``path`` as a ``Path``.
    """
    plt = _pyplot()
    epochs = [int(r["epoch"]) for r in rows]
    panels = [("loss", "Loss"), ("accuracy", "Top-1 accuracy"), ("learning_rate", "Learning rate")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (key, title) in zip(axes, panels):
        for prefix, label in (("", "train"), ("val_", "validation")):
            name = prefix + key
            points = [(e, float(r[name])) for e, r in zip(epochs, rows) if r.get(name) not in (None, "")]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=label if key != "learning_rate" else None)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if key != "learning_rate" and ax.get_legend_handles_labels()[0]:
            ax.legend()
    return _save_png(plt, fig, path)


def plot_confusion_matrix(matrix, class_names: list[str], path: str | Path, title: str = "Confusion matrix") -> Path:
    """Plot a confusion matrix (rows: true class, columns: predicted) to a PNG.

    Args:
        matrix: Square counts, ``matrix[true][predicted]``.
        class_names: Names in index order.
        path: The PNG file to write.
        title: Figure title.

    Returns:
        ``path`` as a ``Path``.
    """
    import numpy as np

    plt = _pyplot()
    counts = np.asarray(matrix, dtype=np.int64)
    n = len(class_names)
    size = max(5.0, 0.5 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 30:
        threshold = counts.max() / 2 if counts.size else 0
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if counts[i, j] > threshold else "black")
    return _save_png(plt, fig, path)
