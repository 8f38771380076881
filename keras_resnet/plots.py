"""PNG plots of a run: training curves, the confusion matrix, the reliability diagram,
image grids (top losses) and Grad-CAM overlays (matplotlib, Agg backend).

In the bottom layer: training, evaluation and export (Grad-CAM in ``kresnet predict``)
all draw with it, and export does not import the trainer's package."""

from __future__ import annotations

from pathlib import Path

CURVES_FILE = "training_curves.png"
CONFUSION_FILE = "confusion_matrix.png"
CALIBRATION_FILE = "calibration.png"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_png(plt, fig, path: str | Path, rect=None) -> Path:
    """Lay out ``fig`` (inside ``rect``, figure fractions, when given), write it atomically as a PNG at ``path`` and free it."""
    from keras_resnet.runs import atomic_path

    fig.tight_layout(rect=rect) if rect is not None else fig.tight_layout()
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


def plot_reliability(panels, path: str | Path) -> Path:
    """Reliability diagrams side by side: accuracy against confidence per bin, with the counts below.

    Args:
        panels: ``[(table, title), ...]``; ``table`` is
            `keras_resnet.train.calibration.reliability`'s dict (``bins``, ``counts``,
            ``confidence``, ``accuracy``).
        path: The PNG file to write.

    Returns:
        ``path`` as a ``Path``.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(2, len(panels), figsize=(5 * len(panels), 6), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1]})
    for column, (table, title) in enumerate(panels):
        top, bottom = axes[0][column], axes[1][column]
        bins = int(table["bins"])
        width = 1.0 / bins
        lefts = [i * width for i in range(bins)]
        filled = [i for i, n in enumerate(table["counts"]) if n]
        top.bar([lefts[i] for i in filled], [table["accuracy"][i] for i in filled], width=width, align="edge",
                color="tab:blue", edgecolor="black", label="accuracy")
        for i in filled:  # the gap between accuracy and mean confidence, per bin (either side of the bar top)
            acc, conf = table["accuracy"][i], table["confidence"][i]
            top.bar(lefts[i], conf - acc, bottom=acc, width=width, align="edge", facecolor="none", hatch="//",
                    edgecolor="tab:red", label="gap to mean confidence" if i == filled[0] else None)
        top.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
        top.set_xlim(0, 1)
        top.set_ylim(0, 1)
        top.set_ylabel("accuracy")
        top.set_title(title)
        top.legend(loc="upper left")
        bottom.bar(lefts, table["counts"], width=width, align="edge", color="gray", edgecolor="black")
        bottom.set_xlim(0, 1)
        bottom.set_xlabel("confidence (top-1 probability)")
        bottom.set_ylabel("examples")
    return _save_png(plt, fig, path)


def plot_image_grid(images, captions: list[str], path: str | Path, title: str = "", columns: int = 4) -> Path:
    """Images in a grid, each with a caption, shown as they are (uint8 RGB, no normalisation).

    Args:
        images: uint8 ``[H, W, 3]`` arrays (floats are read as 0..255 pixels).
        captions: One caption per image.
        path: The PNG file to write.
        title: Figure title.
        columns: Images per row.

    Returns:
        ``path`` as a ``Path``.
    """
    import numpy as np

    plt = _pyplot()
    n = max(1, len(images))
    columns = max(1, min(columns, n))
    rows = (n + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(3.0 * columns, 3.8 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, captions):
        pixels = np.clip(np.asarray(image), 0, 255).astype(np.uint8)
        ax.imshow(pixels, interpolation="nearest" if max(pixels.shape[:2]) < 96 else "antialiased")
        ax.set_title(caption, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=12)
    return _save_png(plt, fig, path, rect=(0, 0, 1, 1 - 0.45 / (3.8 * rows + 0.4)) if title else None)


def plot_gradcam(image, heatmap, path: str | Path, title: str = "", alpha: float = 0.45) -> Path:
    """The image beside the image with a Grad-CAM heat map over it.

    Args:
        image: uint8 ``[H, W, 3]``, at its own size.
        heatmap: ``[h, w]`` in [0, 1], any size: stretched over the image (bilinear).
        path: The PNG file to write.
        title: Figure title (class and probability).
        alpha: Opacity of the heat map.

    Returns:
        ``path`` as a ``Path``.
    """
    import numpy as np

    plt = _pyplot()
    pixels = np.clip(np.asarray(image), 0, 255).astype(np.uint8)
    height, width = pixels.shape[:2]
    interpolation = "nearest" if max(height, width) < 96 else "antialiased"
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.4))
    axes[0].imshow(pixels, interpolation=interpolation)
    axes[0].set_title("image")
    axes[1].imshow(pixels, interpolation=interpolation)
    shown = axes[1].imshow(np.asarray(heatmap, dtype=np.float32), cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0,
                           extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="bilinear")
    axes[1].set_title("Grad-CAM")
    fig.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.04)
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return _save_png(plt, fig, path, rect=(0, 0, 1, 0.93) if title else None)
