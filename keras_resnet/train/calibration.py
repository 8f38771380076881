"""Can the model's confidence be trusted: ECE, NLL, reliability bins and temperature scaling.

* **Expected calibration error** (Guo et al. 2017, "On Calibration of Modern Neural
  Networks"): predictions are put in ``bins`` equal-width bins by confidence (the top
  probability; bin ``i`` holds confidences in ``(i/bins, (i+1)/bins]``, a confidence
  of 0 goes to the first bin), and ECE is ``sum_b |B_b|/N * |accuracy(B_b) -
  confidence(B_b)|``. 15 bins, as in the paper.
* **Negative log-likelihood**: ``mean(-log p_true)``, probabilities floored at
  `PROBABILITY_FLOOR` only so that a zero does not give infinity. (The ``loss`` of
  `keras_resnet.train.evaluate` is the same figure with Keras' 1e-7 clip.)
* **Temperature scaling**: one scalar ``T`` fitted on the *validation* split by
  minimising the NLL of ``softmax(log(p) / T)``; ``log(p)`` are the model's logits
  up to a per-example constant, which softmax ignores. Dividing every logit by the
  same positive number never changes the top-1 class. `calibrated_model` appends
  ``log -> Rescaling(1/T) -> Softmax`` to a model, plain Keras layers and ``keras.ops``
  nodes that ``.keras`` files store and load under ``safe_mode`` (no Lambda), so
  every export format carries the temperature.

`calibrate_run` does it for a run: fit on val, report ECE/NLL before and after on
test, write ``<run>/calibrated/`` (``model.keras`` with the temperature, the run's
``config.yaml``, labels, preprocessing record, ``calibration.json`` and a before/after
``calibration.png``). That folder is a run of its own for ``kresnet evaluate``,
``export`` and ``predict``.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_resnet import runs

DEFAULT_BINS = 15
#: Smallest probability whose log is taken (float32 softmax outputs can be exactly 0).
PROBABILITY_FLOOR = 1e-30
#: Temperatures searched by `fit_temperature`.
TEMPERATURE_RANGE = (0.01, 100.0)
CALIBRATED_DIR = "calibrated"
CALIBRATION_FILE = "calibration.json"
CALIBRATION_PLOT = "calibration.png"
TEMPERATURE_LAYER = "temperature"
CALIBRATED_OUTPUT = "calibrated_predictions"


def _check(probabilities, labels) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise ValueError(f"probabilities must be a non-empty [N, C] array. Received: shape={probs.shape}")
    if labels.shape != (probs.shape[0],):
        raise ValueError(f"labels must be [N] = [{probs.shape[0]}]. Received: shape={labels.shape}")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f"labels must be class indices in [0, {probs.shape[1]}). Received: {labels.min()}..{labels.max()}")
    return probs, labels


def log_probabilities(probabilities) -> np.ndarray:
    """``log(max(p, PROBABILITY_FLOOR))`` in float64: the logits temperature scaling divides."""
    return np.log(np.maximum(np.asarray(probabilities, dtype=np.float64), PROBABILITY_FLOOR))


def negative_log_likelihood(probabilities, labels) -> float:
    """Mean ``-log p_true`` (probabilities floored at `PROBABILITY_FLOOR`).

    Example:
        >>> negative_log_likelihood(np.array([[0.5, 0.5]]), np.array([0]))  # log 2
        0.6931...
    """
    probs, labels = _check(probabilities, labels)
    return float(-log_probabilities(probs[np.arange(len(labels)), labels]).mean())


def reliability(probabilities, labels, bins: int = DEFAULT_BINS) -> dict:
    """Per-bin counts, mean confidence and accuracy of the top-1 predictions.

    Args:
        probabilities: ``[N, C]`` probabilities.
        labels: ``[N]`` integer classes.
        bins: Equal-width confidence bins over [0, 1].

    Returns:
        ``{"bins", "counts", "confidence", "accuracy"}``: lists of ``bins`` entries;
        ``confidence`` and ``accuracy`` are None for an empty bin.
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be an integer >= 1. Received: bins={bins!r}")
    probs, labels = _check(probabilities, labels)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    # bin i holds (i/bins, (i+1)/bins]; 0 goes to bin 0
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    conf_sum = np.bincount(index, weights=confidence, minlength=bins)
    acc_sum = np.bincount(index, weights=correct, minlength=bins)
    return {
        "bins": bins,
        "counts": [int(c) for c in counts],
        "confidence": [float(s / c) if c else None for s, c in zip(conf_sum, counts)],
        "accuracy": [float(s / c) if c else None for s, c in zip(acc_sum, counts)],
    }


def ece_from_reliability(table: dict) -> float:
    """ECE from a `reliability` table: ``sum_b |B_b|/N * |accuracy_b - confidence_b|``."""
    total = sum(table["counts"])
    return float(sum(
        n / total * abs(a - c) for n, a, c in zip(table["counts"], table["accuracy"], table["confidence"]) if n
    ))


def expected_calibration_error(probabilities, labels, bins: int = DEFAULT_BINS) -> float:
    """Expected calibration error with ``bins`` equal-width confidence bins (see the module docstring).

    Example:
        >>> expected_calibration_error(np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([0, 1]))
        0.35
    """
    return ece_from_reliability(reliability(probabilities, labels, bins))


def calibration_metrics(probabilities, labels, bins: int = DEFAULT_BINS) -> dict:
    """``{"ece", "nll", "reliability"}`` for ``metrics.json``."""
    table = reliability(probabilities, labels, bins)
    return {"ece": ece_from_reliability(table), "nll": negative_log_likelihood(probabilities, labels),
            "reliability": table}


def apply_temperature(probabilities, temperature: float) -> np.ndarray:
    """``softmax(log(p) / T)``: what `calibrated_model` outputs for a model outputting ``p``."""
    z = log_probabilities(probabilities) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _nll_at(logp: np.ndarray, labels: np.ndarray, beta: float) -> float:
    z = beta * logp
    m = z.max(axis=1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    return float((lse - z[np.arange(len(labels)), labels]).mean())


def fit_temperature(probabilities, labels, bounds: tuple[float, float] = TEMPERATURE_RANGE) -> float:
    """The temperature ``T`` minimising the NLL of ``softmax(log(p) / T)`` on these examples.

    The NLL is convex in ``1/T``, so a golden-section search over ``log(1/T)`` finds
    the global minimum within ``bounds``; ``T = 1`` is kept when nothing beats it.

    Args:
        probabilities: ``[N, C]`` probabilities of the *validation* split.
        labels: ``[N]`` integer classes.
        bounds: Smallest and largest temperature searched.

    Returns:
        ``T`` (> 1 softens an over-confident model, < 1 sharpens an under-confident one).
    """
    probs, labels = _check(probabilities, labels)
    logp = log_probabilities(probs)
    lo, hi = math.log(1.0 / bounds[1]), math.log(1.0 / bounds[0])
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo + (1 - ratio) * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = _nll_at(logp, labels, math.exp(a)), _nll_at(logp, labels, math.exp(b))
    for _ in range(200):
        if hi - lo < 1e-9:
            break
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = lo + (1 - ratio) * (hi - lo)
            fa = _nll_at(logp, labels, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = _nll_at(logp, labels, math.exp(b))
    beta = math.exp((lo + hi) / 2.0)
    if _nll_at(logp, labels, beta) > _nll_at(logp, labels, 1.0):
        return 1.0
    return float(1.0 / beta)


def calibrated_model(model, temperature: float):
    """``model`` with its softmax output re-tempered: ``softmax(log(max(p, floor)) / T)``.

    Built from ``keras.ops`` nodes (log, maximum), a ``Rescaling`` layer named
    ``temperature`` and a ``Softmax`` layer: no Lambda, so the saved ``.keras`` file
    loads under ``safe_mode`` and exports like any kresnet model. The model's own
    layers are shared (its preprocessing layer stays first).

    Args:
        model: A functional Keras model outputting class probabilities.
        temperature: ``T`` > 0 (`fit_temperature`).

    Returns:
        A new functional model with the same inputs and name.
    """
    import keras

    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0. Received: temperature={temperature!r}")
    probabilities = model.outputs[0]
    logp = keras.ops.log(keras.ops.maximum(keras.ops.cast(probabilities, "float32"), PROBABILITY_FLOOR))
    scaled = keras.layers.Rescaling(1.0 / float(temperature), name=TEMPERATURE_LAYER, dtype="float32")(logp)
    outputs = keras.layers.Softmax(name=CALIBRATED_OUTPUT, dtype="float32")(scaled)
    return keras.Model(model.inputs, outputs, name=model.name)


@dataclass
class CalibrationResult:
    """What `calibrate_run` found and wrote.

    Attributes:
        temperature: The fitted ``T``.
        before, after: ``{"val": {"ece", "nll", "top1"}, "test": {...}}`` (test absent
            when the data has no test split).
        output_dir: The calibrated run folder.
        model_path: Its ``model.keras``.
    """

    temperature: float
    before: dict
    after: dict
    output_dir: Path
    model_path: Path


def _summary(probs, labels, bins) -> dict:
    return {"ece": expected_calibration_error(probs, labels, bins), "nll": negative_log_likelihood(probs, labels),
            "top1": float((np.asarray(probs).argmax(axis=1) == labels).mean()), "examples": len(labels)}


def calibrate_run(
    path: str | Path | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    batch_size: int | None = None,
    output: str | Path | None = None,
    bins: int = DEFAULT_BINS,
    runs_root: str | Path = runs.DEFAULT_RUNS_ROOT,
) -> CalibrationResult:
    """Fit a temperature on a run's validation split and save the calibrated model.

    The temperature is fitted on the ``val`` split only (the seeded holdout training
    used, or the data's own val split), never on test; test gives the before/after
    figures. The saved model is checked against the fitted formula on one batch.

    Args:
        path: A run directory or ``.keras`` file (default: the latest run).
        dataset, data_dir: Data to use instead of the run's (same classes).
        batch_size: Prediction batch size (default: the run's).
        output: Folder for the calibrated run (default ``<run>/calibrated``).
        bins: ECE bins.
        runs_root: Where the latest run is looked for.

    Returns:
        A `CalibrationResult`.

    Raises:
        ValueError: the data has no validation split, or classes differ from the model's.
        FileNotFoundError: no such run, or no data named for a model without config.

    Example:
        >>> result = calibrate_run("saved_models/run1")
        >>> result.temperature, result.before["test"]["ece"], result.after["test"]["ece"]
    """
    from keras_resnet.plots import plot_reliability
    from keras_resnet.train.evaluate import predict_dataset, split_data

    run = runs.load_run(path, runs_root)
    found = split_data(run, "val", dataset=dataset, data_dir=data_dir, batch_size=batch_size, missing_ok=True)
    if found is None:
        raise ValueError(
            "The data has no validation split to fit the temperature on (the test split is never used for "
            "fitting). Give it a val/ folder, or a run trained with data.validation_fraction > 0."
        )
    val = found[0]
    test = split_data(run, "test", dataset=dataset, data_dir=data_dir, batch_size=batch_size, missing_ok=True)
    val_probs, val_labels = predict_dataset(run.model, val.dataset)
    temperature = fit_temperature(val_probs, val_labels)
    sets = {"val": (val_probs, val_labels)}
    if test is not None:
        sets["test"] = predict_dataset(run.model, test[0].dataset)
    before = {name: _summary(p, y, bins) for name, (p, y) in sets.items()}
    after = {name: _summary(apply_temperature(p, temperature), y, bins) for name, (p, y) in sets.items()}

    out = Path(output) if output is not None else run.run_dir / CALIBRATED_DIR
    out.mkdir(parents=True, exist_ok=True)
    model = calibrated_model(run.model, temperature)
    model_path = runs.atomic_save_model(model, out / runs.MODEL_FILE,
                                        metadata={"labels": list(run.labels), "preprocessing": run.spec})
    _check_saved(model_path, run.model, val.dataset, temperature)
    for name in (runs.CONFIG_FILE, runs.LABELS_FILE, runs.PREPROCESSING_FILE, runs.DATASET_FILE):
        if (run.run_dir / name).is_file() and (run.run_dir / name).resolve() != (out / name).resolve():
            shutil.copyfile(run.run_dir / name, out / name)
    if not (out / runs.LABELS_FILE).is_file():
        runs.write_labels(out, run.labels)
    shown = "test" if "test" in sets else "val"
    probs, labels = sets[shown]
    plot_reliability(
        [(reliability(probs, labels, bins), f"before ({shown}): ECE {before[shown]['ece']:.4f}"),
         (reliability(apply_temperature(probs, temperature), labels, bins),
          f"after T={temperature:.3f} ({shown}): ECE {after[shown]['ece']:.4f}")],
        out / CALIBRATION_PLOT,
    )
    runs.atomic_write_json(out / CALIBRATION_FILE, {
        "temperature": temperature, "fitted_on": "val", "bins": bins, "source_model": str(run.model_path),
        "before": before, "after": after,
    })
    return CalibrationResult(temperature, before, after, out, model_path)


def _check_saved(model_path: Path, base_model, dataset, temperature: float) -> None:
    """The saved calibrated model (loaded under safe_mode) gives ``apply_temperature`` of the base model's output."""
    import keras

    loaded = keras.saving.load_model(model_path, compile=False, safe_mode=True)
    for images, *_ in dataset.take(1):
        expected = apply_temperature(np.asarray(base_model.predict_on_batch(images)), temperature)
        got = np.asarray(loaded.predict_on_batch(images), dtype=np.float64)
        gap = float(np.abs(got - expected).max())
        if gap > 1e-4:
            raise RuntimeError(f"The saved calibrated model differs from softmax(log p / T) by {gap:.2e} (> 1e-4).")


def format_calibration(result: CalibrationResult) -> str:
    """A printable before/after table."""
    lines = [f"temperature T = {result.temperature:.4f} (fitted on val)",
             f"{'split':<6}  {'ECE before':>10}  {'ECE after':>10}  {'NLL before':>10}  {'NLL after':>10}  {'top-1':>7}"]
    for split in result.before:
        b, a = result.before[split], result.after[split]
        lines.append(f"{split:<6}  {b['ece']:>10.4f}  {a['ece']:>10.4f}  {b['nll']:>10.4f}  {a['nll']:>10.4f}  {a['top1']:>7.4f}")
    lines.append(f"calibrated model: {result.model_path}")
    return "\n".join(lines)
