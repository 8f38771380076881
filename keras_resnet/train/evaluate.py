"""Evaluation: loss, top-1, top-5, per-class precision/recall/F1 and the confusion matrix.

`evaluate_model` works on any model and ``(images, one_hot_labels[, weights])``
dataset; `evaluate_run` loads a run (`keras_resnet.runs.load_run`: the model takes
raw pixels), builds only the evaluated split with the run's data config, and writes
``metrics.json`` and ``confusion_matrix.png`` beside the model, with the calibration
figures (ECE, NLL, ``calibration.png``; `keras_resnet.train.calibration`) and the
highest-loss images (``top_losses.png`` / ``.csv``; `keras_resnet.train.top_losses`).

Test-time augmentation (``tta="flip"``) is reported beside the plain figures, never
instead of them: the same pass over the data predicts each batch and its mirrored
copy, and the metrics gain a ``"tta"`` section (see `evaluate_model`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from keras_resnet import runs
from keras_resnet.config import TTA, choices

log = logging.getLogger(__name__)

#: The figures of a TTA evaluation kept in the ``"tta"`` section (the per-class table,
#: confusion matrix and reliability bins stay those of the plain predictions).
TTA_KEYS = ("loss", "top1", "top5", "top5_k", "macro_f1", "ece", "nll")


class EvaluationNotWrittenError(OSError):
    """The evaluation ran but its files could not be written (a read-only run, a full disk).

    An ``OSError`` with the errno and path of the failed write (``cause``), carrying the
    computed ``metrics`` (the dict `evaluate_run` would have returned), so a caller can
    still show them.
    """

    def __init__(self, metrics: dict, cause: OSError):
        super().__init__(cause.errno, cause.strerror or str(cause), cause.filename)
        self.metrics = metrics
        self.cause = cause


def metrics_from_predictions(probabilities, labels, class_names: list[str]) -> dict:
    """Metrics from predicted probabilities and integer labels.

    Args:
        probabilities: ``[N, C]`` softmax outputs.
        labels: ``[N]`` integer class indices.
        class_names: ``C`` names in index order.

    Returns:
        ``{"num_examples", "loss", "top1", "top5", "per_class": {name: {precision,
        recall, f1, support}}, "macro_f1", "confusion_matrix": [[...]], "class_names",
        "ece", "nll", "reliability"}``; ``top5`` is top-min(5, C). Loss is the
        cross-entropy without label smoothing; ``ece`` (15 bins), ``nll`` and the
        ``reliability`` bins come from `keras_resnet.train.calibration`.

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
    from keras_resnet.train.calibration import calibration_metrics

    calibration = calibration_metrics(probs, labels)
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
        "ece": calibration["ece"],
        "nll": calibration["nll"],
        "reliability": calibration["reliability"],
    }


def check_tta(tta: str) -> str:
    """``tta`` if it is a test-time augmentation kresnet knows (`keras_resnet.config.TTA`).

    Args:
        tta: ``"none"`` or ``"flip"``.

    Returns:
        ``tta``.

    Raises:
        ValueError: for any other value, quoting it.
    """
    allowed = choices(TTA)
    if tta not in allowed:
        raise ValueError(f"tta must be one of {', '.join(allowed)}. Received: tta={tta!r}")
    return tta


def tta_probabilities(model, images, tta: str = "flip", probabilities=None) -> np.ndarray:
    """Test-time-augmented class probabilities of one batch.

    ``flip``: the mean of the model's probabilities on the images and on their
    horizontal mirror images (``keras.ops.flip`` on the width axis of the NHWC batch).

    Args:
        model: A Keras model outputting class probabilities (softmax).
        images: One ``[N, H, W, C]`` batch, as the model takes it.
        tta: ``"flip"`` (``"none"`` returns the plain probabilities).
        probabilities: The model's plain ``[N, C]`` probabilities of ``images`` when
            already computed (not predicted again).

    Returns:
        float64 ``[N, C]``.

    Raises:
        ValueError: an unknown ``tta``, or images that are not a batch of NHWC images.
    """
    import keras

    check_tta(tta)
    if probabilities is None:
        probabilities = model.predict_on_batch(images)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if tta == "none":
        return probabilities
    if len(images.shape) != 4:
        raise ValueError(f"Flip TTA needs a batch of [N, H, W, C] images. Received: shape={tuple(images.shape)}")
    mirrored = np.asarray(model.predict_on_batch(keras.ops.flip(images, axis=2)), dtype=np.float64)
    return (probabilities + mirrored) / 2.0


def predict_dataset(model, dataset, on_batch=None) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and integer labels of a batched ``(images, one_hot_labels[, weights])`` dataset.

    Args:
        model: A Keras model outputting class probabilities.
        dataset: The batches (raw pixels for a model carrying its preprocessing).
        on_batch: Optional ``f(images, probabilities, labels)`` called per batch, in
            order (e.g. `keras_resnet.train.top_losses.TopLosses`).

    Returns:
        ``(float64 [N, C], int64 [N])``.

    Raises:
        ValueError: for an empty dataset.
    """
    probabilities, labels, _ = predict_dataset_tta(model, dataset, "none", on_batch)
    return probabilities, labels


def predict_dataset_tta(model, dataset, tta: str = "none", on_batch=None):
    """Plain and test-time-augmented probabilities of a dataset, from one pass over it.

    Each batch is read once; its plain and (for ``tta="flip"``) mirrored predictions
    are made from it (two ``predict_on_batch`` calls of the batch's own size, so the
    plain probabilities are exactly those of an evaluation without TTA).

    Args:
        model: A Keras model outputting class probabilities.
        dataset: Batches of ``(images, one_hot_labels[, weights])``.
        tta: ``"none"`` or ``"flip"`` (see `tta_probabilities`).
        on_batch: Optional ``f(images, probabilities, labels)`` per batch, given the
            plain probabilities.

    Returns:
        ``(plain float64 [N, C], int64 [N], TTA float64 [N, C] or None for "none")``.

    Raises:
        ValueError: for an unknown ``tta`` or an empty dataset.
    """
    check_tta(tta)
    probabilities, labels, augmented = [], [], []
    for element in dataset:
        images, one_hot = element[0], element[1]
        probs = np.asarray(model.predict_on_batch(images), dtype=np.float64)
        batch_labels = np.asarray(one_hot).argmax(axis=-1)
        if on_batch is not None:
            on_batch(np.asarray(images), probs, batch_labels)
        if tta != "none":
            augmented.append(tta_probabilities(model, images, tta, probabilities=probs))
        probabilities.append(probs)
        labels.append(batch_labels)
    if not probabilities:
        raise ValueError("Cannot evaluate on an empty dataset. Received: 0 batches")
    return (np.concatenate(probabilities), np.concatenate(labels),
            np.concatenate(augmented) if augmented else None)


def evaluate_model(model, dataset, class_names: list[str], on_batch=None, tta: str = "none") -> dict:
    """Evaluate ``model`` on a batched dataset of ``(images, one_hot_labels[, weights])``.

    Args:
        model: A Keras model outputting class probabilities.
        dataset: A ``tf.data.Dataset`` of the images the model takes (raw pixels
            for a model carrying its preprocessing, as ``keras_resnet.data``
            delivers them).
        class_names: Class names in index order.
        on_batch: See `predict_dataset` (it sees the plain probabilities).
        tta: ``"none"``, or ``"flip"`` to also report test-time augmentation (the
            mean of the probabilities on each image and its mirror image), from the
            same pass over ``dataset``.

    Returns:
        The dict of `metrics_from_predictions` for the plain predictions; with
        ``tta="flip"`` also ``"tta": {"method": "flip", "loss", "top1", "top5",
        "top5_k", "macro_f1", "ece", "nll"}`` computed the same way from the
        augmented probabilities.

    Raises:
        ValueError: an unknown ``tta``, an empty dataset, or class names that do
            not match the model's outputs.
    """
    probabilities, labels, augmented = predict_dataset_tta(model, dataset, tta, on_batch)
    metrics = metrics_from_predictions(probabilities, labels, class_names)
    if augmented is not None:
        tta_metrics = metrics_from_predictions(augmented, labels, class_names)
        metrics["tta"] = {"method": tta, **{key: tta_metrics[key] for key in TTA_KEYS}}
    return metrics


def format_tta(metrics: dict) -> str | None:
    """The report line of a TTA evaluation, set against the plain figures.

    Args:
        metrics: A dict of `evaluate_model`.

    Returns:
        E.g. ``"TTA flip: top-1 0.8667 (+1.34 pts vs plain)  top-5 0.9900 (+0.00 pts)
        loss 0.4012 (-0.0231)  macro-F1 0.8650 (+1.20 pts)"``, or None without a
        ``"tta"`` section.
    """
    tta = metrics.get("tta")
    if not tta:
        return None

    def points(key):
        return f"{tta[key]:.4f} ({100 * (tta[key] - metrics[key]):+.2f} pts{' vs plain' if key == 'top1' else ''})"

    return (f"TTA {tta['method']}: top-1 {points('top1')}  top-{tta['top5_k']} {points('top5')}  "
            f"loss {tta['loss']:.4f} ({tta['loss'] - metrics['loss']:+.4f})  macro-F1 {points('macro_f1')}")


def format_report(metrics: dict, title: str = "") -> str:
    """A printable table: the summary line, then precision/recall/F1/support per class.

    Args:
        metrics: A dict of `evaluate_model` (or `evaluate_run`).
        title: A first line, if any.

    Returns:
        The lines: title, plain summary, calibration, the TTA line (`format_tta`,
        when the metrics have a ``"tta"`` section), then the per-class table of the
        plain predictions.
    """
    width = max([len("class"), *(len(n) for n in metrics["per_class"])])
    lines = [title] if title else []
    lines.append(
        f"examples {metrics['num_examples']}  loss {metrics['loss']:.4f}  top-1 {metrics['top1']:.4f}  "
        f"top-{metrics['top5_k']} {metrics['top5']:.4f}  macro-F1 {metrics['macro_f1']:.4f}"
    )
    if "ece" in metrics:
        bins = metrics.get("reliability", {}).get("bins", 15)
        lines.append(f"calibration: ECE {metrics['ece']:.4f} ({bins} bins)  NLL {metrics['nll']:.4f}")
    tta_line = format_tta(metrics)
    if tta_line:
        lines.append(tta_line)
    lines.append(f"{'class':<{width}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>8}")
    for name, m in metrics["per_class"].items():
        lines.append(f"{name:<{width}}  {m['precision']:>9.4f}  {m['recall']:>9.4f}  {m['f1']:>9.4f}  {m['support']:>8}")
    return "\n".join(lines)


def write_evaluation(run_dir: Path, metrics: dict, split: str, extra: dict | None = None) -> Path:
    """Write ``metrics.json`` (``{"split": ..., **metrics}``), ``confusion_matrix.png`` and
    (when the metrics have reliability bins) the reliability diagram ``calibration.png`` into ``run_dir``.

    Returns:
        The ``metrics.json`` path.
    """
    from keras_resnet.plots import CONFUSION_FILE, plot_confusion_matrix

    run_dir = Path(run_dir)
    record = {"split": split, **(extra or {}), **metrics}
    path = runs.atomic_write_json(run_dir / runs.METRICS_FILE, record)
    plot_confusion_matrix(metrics["confusion_matrix"], metrics["class_names"], run_dir / CONFUSION_FILE,
                          title=f"Confusion matrix ({split}, top-1 {metrics['top1']:.3f})")
    if metrics.get("reliability"):
        from keras_resnet.plots import CALIBRATION_FILE, plot_reliability

        title = f"Reliability ({split}): ECE {metrics['ece']:.4f}, NLL {metrics['nll']:.4f}"
        plot_reliability([(metrics["reliability"], title)], run_dir / CALIBRATION_FILE)
    return path


def split_data(run, split: str, dataset: str | None = None, data_dir: str | None = None,
               batch_size: int | None = None, missing_ok: bool = False):
    """One split of a run's data (or of the data named instead), for its model.

    Args:
        run: A `keras_resnet.runs.Run`.
        split: ``"test"`` or ``"val"``.
        dataset, data_dir: Data to use instead of the run's ``config.yaml`` data
            (required for a model without one).
        batch_size: Batch size (default: the run's).
        missing_ok: Return None instead of raising when the data has no such split.

    Returns:
        ``(EvaluationData, DataConfig)``, or None (``missing_ok`` and no such split).

    Raises:
        FileNotFoundError: no data named for a model without ``config.yaml``.
        ValueError: an unknown or missing split, or classes that differ from the model's.
    """
    import dataclasses

    from keras_resnet.data.pipeline import evaluation_dataset
    from keras_resnet.train.config import DataConfig

    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val'. Received: split={split!r}")
    if run.config_path is None and dataset is None and data_dir is None:
        raise FileNotFoundError(
            f"No {runs.CONFIG_FILE} beside {run.model_path}; name the data with --dataset and/or --data-dir."
        )
    data = run.data_config() if run.config_path is not None else DataConfig()
    seed = run.config().training.seed if run.config_path is not None else 0
    changes = {k: v for k, v in {"dataset": dataset, "data_dir": data_dir, "batch_size": batch_size}.items() if v}
    if dataset is not None and data_dir is None:
        changes["data_dir"] = None  # a new dataset name is not read from the run's folder
    if changes:
        data = dataclasses.replace(data, **changes)
    try:
        target = evaluation_dataset(data, split, run.image_size, seed=seed)
    except ValueError as error:
        if missing_ok and f"has no {split!r} split" in str(error):
            return None
        raise
    if list(target.class_names) != run.labels:
        raise ValueError(
            f"The model's classes differ from the dataset's ({target.name}). "
            f"Received: dataset classes={list(target.class_names)!r}, model classes={run.labels!r}"
        )
    return target, data


def evaluate_run(
    path: str | Path | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    split: str = "test",
    batch_size: int | None = None,
    write: bool = True,
    runs_root: str | Path = runs.DEFAULT_RUNS_ROOT,
    top_losses: int = 16,
    tta: str = "none",
) -> dict:
    """Evaluate a run directory or ``.keras`` file on a split of its dataset.

    The model carries its preprocessing, so only the evaluated split is read
    (decoded and resized to the model's size, nothing computed from the train
    split): evaluating on another copy of the data gives the same figures for the
    same images. The data config comes from the run's ``config.yaml``;
    ``dataset``/``data_dir`` override it (and are required for a model without one).

    Args:
        path: A run directory, a ``.keras`` file, or None for the latest run under
            ``runs_root``.
        dataset: Dataset name or folder to evaluate on instead of the run's.
        data_dir: Where that dataset lies.
        split: ``"test"`` or ``"val"``.
        batch_size: Evaluation batch size (default: the run's).
        write: Write ``metrics.json``, ``confusion_matrix.png``, ``calibration.png``
            and the top losses beside the model.
        runs_root: Where the latest run is looked for.
        top_losses: How many highest-loss images go into ``top_losses.png`` /
            ``top_losses.csv`` (0: none).
        tta: ``"none"``, or ``"flip"``: also report test-time augmentation (mean of
            the probabilities on each image and its mirror image) in a ``"tta"``
            section beside the plain figures (see `evaluate_model`); the data are
            read once.

    Returns:
        The metrics dict, plus ``"split"``, ``"model"`` and ``"dataset"`` (and
        ``"top_losses"``: the CSV/PNG paths, when written). Top-level figures, the
        per-class table, confusion matrix, calibration and top losses are those
        of the plain predictions.

    Raises:
        FileNotFoundError: if the run or model is missing, or no data is named for a
            model without ``config.yaml``.
        ValueError: for an unknown split or ``tta``, a split the dataset lacks, or
            class names that differ from the model's labels.
        EvaluationNotWrittenError: the metrics were computed but a file could not be
            written (read-only run directory, full disk); it carries the metrics.

    Example:
        >>> evaluate_run("saved_models/run1", data_dir="../shared/datasets/cifar10")["top1"]
    """
    from keras_resnet.train.top_losses import TopLosses, write_top_losses

    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val'. Received: split={split!r}")
    if isinstance(top_losses, bool) or not isinstance(top_losses, int) or top_losses < 0:
        raise ValueError(f"top_losses must be an integer >= 0. Received: top_losses={top_losses!r}")
    check_tta(tta)
    run = runs.load_run(path, runs_root)
    target, data = split_data(run, split, dataset=dataset, data_dir=data_dir, batch_size=batch_size)
    collector = TopLosses(top_losses) if write and top_losses else None
    metrics = evaluate_model(run.model, target.dataset, run.labels, on_batch=collector, tta=tta)
    extra = {"model": str(run.model_path), "dataset": data.dataset or data.data_dir}
    result = {"split": split, **extra, **metrics}
    try:
        if collector is not None:
            paths = target.paths
            if paths is not None and len(paths) != metrics["num_examples"]:
                # a file that passed the listing check failed to decode and was skipped
                # (on_bad_image: skip): positions no longer match the listing, so no paths
                log.warning("%d of %d listed images did not decode; top_losses.csv gives positions without paths.",
                            len(paths) - metrics["num_examples"], len(paths))
                paths = None
            written = write_top_losses(collector.rows(), run.labels, run.run_dir, paths=paths,
                                       title=f"Top {top_losses} losses ({split} split of {target.name})")
            if written:
                result["top_losses"] = {k: str(v) for k, v in written.items()}
        if write:
            write_evaluation(run.run_dir, metrics, split, extra)
    except OSError as error:  # the metrics exist: hand them over with the reason they were not saved
        raise EvaluationNotWrittenError(result, error) from error
    return result
