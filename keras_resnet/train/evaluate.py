"""Evaluation: loss, top-1, top-5, per-class precision/recall/F1 and the confusion matrix.

`evaluate_model` works on any model and ``(images, one_hot_labels[, weights])``
dataset; `evaluate_run` loads a run directory (or a ``.keras`` file), rebuilds its
evaluation split with the run's data config, and writes ``metrics.json`` and
``confusion_matrix.png`` into the run directory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_resnet import runs


def metrics_from_predictions(probabilities, labels, class_names: list[str]) -> dict:
    """Metrics from predicted probabilities and integer labels.

    Args:
        probabilities: ``[N, C]`` softmax outputs.
        labels: ``[N]`` integer class indices.
        class_names: ``C`` names in index order.

    Returns:
        ``{"num_examples", "loss", "top1", "top5", "per_class": {name: {precision,
        recall, f1, support}}, "macro_f1", "confusion_matrix": [[...]], "class_names"}``;
        ``top5`` is top-min(5, C). Loss is the cross-entropy without label smoothing.

    Example:
        >>> metrics_from_predictions(np.eye(2), np.array([0, 1]), ["a", "b"])["top1"]
        1.0
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n, num_classes = probs.shape if probs.ndim == 2 else (0, len(class_names))
    if num_classes != len(class_names):
        raise ValueError(
            f"The model predicts {num_classes} classes but {len(class_names)} class names were given. "
            f"Received: class_names={class_names!r}"
        )
    if n == 0:
        raise ValueError("Cannot evaluate on an empty dataset. Received: 0 examples")
    predicted = probs.argmax(axis=1)
    k = min(5, num_classes)
    top_k = np.argsort(-probs, axis=1)[:, :k]
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = {}
    for i, name in enumerate(class_names):
        tp = confusion[i, i]
        predicted_i, actual_i = confusion[:, i].sum(), confusion[i, :].sum()
        precision = tp / predicted_i if predicted_i else 0.0
        recall = tp / actual_i if actual_i else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": float(precision), "recall": float(recall), "f1": float(f1),
                           "support": int(actual_i)}
    true_probs = np.clip(probs[np.arange(n), labels], 1e-7, 1.0)
    return {
        "num_examples": int(n),
        "loss": float(-np.log(true_probs).mean()),
        "top1": float((predicted == labels).mean()),
        "top5": float((top_k == labels[:, None]).any(axis=1).mean()),
        "top5_k": int(k),
        "macro_f1": float(np.mean([m["f1"] for m in per_class.values()])),
        "per_class": per_class,
        "class_names": list(class_names),
        "confusion_matrix": confusion.tolist(),
    }


def evaluate_model(model, dataset, class_names: list[str]) -> dict:
    """Evaluate ``model`` on a batched dataset of ``(images, one_hot_labels[, weights])``.

    Args:
        model: A Keras model outputting class probabilities.
        dataset: A ``tf.data.Dataset`` (already preprocessed, as built by
            ``keras_resnet.data.build_datasets``).
        class_names: Class names in index order.

    Returns:
        The dict of `metrics_from_predictions`.
    """
    probabilities, labels = [], []
    for element in dataset:
        images, one_hot = element[0], element[1]
        probabilities.append(np.asarray(model.predict_on_batch(images), dtype=np.float64))
        labels.append(np.asarray(one_hot).argmax(axis=-1))
    if not probabilities:
        raise ValueError("Cannot evaluate on an empty dataset. Received: 0 batches")
    return metrics_from_predictions(np.concatenate(probabilities), np.concatenate(labels), class_names)


def format_report(metrics: dict, title: str = "") -> str:
    """A printable table: the summary line, then precision/recall/F1/support per class."""
    width = max([len("class"), *(len(n) for n in metrics["per_class"])])
    lines = [title] if title else []
    lines.append(
        f"examples {metrics['num_examples']}  loss {metrics['loss']:.4f}  top-1 {metrics['top1']:.4f}  "
        f"top-{metrics['top5_k']} {metrics['top5']:.4f}  macro-F1 {metrics['macro_f1']:.4f}"
    )
    lines.append(f"{'class':<{width}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>8}")
    for name, m in metrics["per_class"].items():
        lines.append(f"{name:<{width}}  {m['precision']:>9.4f}  {m['recall']:>9.4f}  {m['f1']:>9.4f}  {m['support']:>8}")
    return "\n".join(lines)


def write_evaluation(run_dir: Path, metrics: dict, split: str, extra: dict | None = None) -> Path:
    """Write ``metrics.json`` (``{"split": ..., **metrics}``) and ``confusion_matrix.png`` into ``run_dir``.

    Returns:
        The ``metrics.json`` path.
    """
    from keras_resnet.train.plots import CONFUSION_FILE, plot_confusion_matrix

    run_dir = Path(run_dir)
    record = {"split": split, **(extra or {}), **metrics}
    path = runs.atomic_write_json(run_dir / runs.METRICS_FILE, record)
    plot_confusion_matrix(metrics["confusion_matrix"], metrics["class_names"], run_dir / CONFUSION_FILE,
                          title=f"Confusion matrix ({split}, top-1 {metrics['top1']:.3f})")
    return path


def evaluate_run(
    path: str | Path | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    split: str = "test",
    batch_size: int | None = None,
    write: bool = True,
) -> dict:
    """Evaluate a run directory or ``.keras`` file on a split of its dataset.

    The data config comes from the run's ``config.yaml`` (``dataset``/``data_dir``
    override it), so the split is preprocessed as in training.

    Args:
        path: A run directory, a ``.keras`` file (in a run directory), or None for
            the latest run under ``saved_models/``.
        dataset: Dataset name or folder to evaluate on instead of the run's.
        data_dir: Where that dataset lies.
        split: ``"test"`` or ``"val"``.
        batch_size: Evaluation batch size (default: the run's).
        write: Write ``metrics.json`` and ``confusion_matrix.png`` into the run directory.

    Returns:
        The metrics dict, plus ``"split"`` and ``"model"``.

    Raises:
        FileNotFoundError: if the run, model or config is missing.
        ValueError: for an unknown split, a split the dataset lacks, or class names
            that differ from the model's ``labels.txt``.
    """
    import dataclasses

    import keras

    from keras_resnet.data.pipeline import build_datasets
    from keras_resnet.train.config import load_config

    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val'. Received: split={split!r}")
    run_dir = runs.resolve_run_dir(path)
    given = Path(path) if path is not None else None
    model_path = given if given is not None and given.is_file() else run_dir / runs.MODEL_FILE
    if not model_path.is_file():
        raise FileNotFoundError(f"No model at {model_path}. Expected a run directory holding {runs.MODEL_FILE}.")
    config_path = run_dir / runs.CONFIG_FILE
    config = load_config(config_path if config_path.is_file() else None)
    if not config_path.is_file() and dataset is None:
        raise FileNotFoundError(
            f"No {runs.CONFIG_FILE} beside {model_path}; name the data with --dataset (and --data-dir)."
        )
    data = config.data
    changes = {k: v for k, v in {"dataset": dataset, "data_dir": data_dir, "batch_size": batch_size}.items() if v}
    if changes:
        data = dataclasses.replace(data, **changes)
    datasets = build_datasets(data, seed=config.training.seed)
    target = {"test": datasets.test, "val": datasets.val}[split]
    if target is None:
        raise ValueError(f"Dataset {data.dataset!r} has no {split!r} split. Received: split={split!r}")
    labels_file = run_dir / runs.LABELS_FILE
    if labels_file.is_file() and runs.read_labels(labels_file) != list(datasets.class_names):
        raise ValueError(
            f"The model's classes ({labels_file}) differ from the dataset's. "
            f"Received: dataset classes={list(datasets.class_names)!r}, model classes={runs.read_labels(labels_file)!r}"
        )
    model = keras.models.load_model(model_path, compile=False)
    metrics = evaluate_model(model, target, list(datasets.class_names))
    extra = {"model": str(model_path), "dataset": data.dataset}
    if write:
        write_evaluation(run_dir, metrics, split, extra)
    return {"split": split, **extra, **metrics}
