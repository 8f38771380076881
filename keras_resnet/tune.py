"""Hyperparameter search with KerasTuner over any keys of the training config.

A search space maps dotted config keys to ranges or choices, written as strings
(`parse_search_space`)::

    optimizer.learning_rate=0.02:0.8:log     a float between 0.02 and 0.8, log-uniform
    model.dropout=0.0:0.5                    a float, uniform
    schedule.warmup_epochs=0:5               an int (both bounds are integers)
    training.label_smoothing=0.0,0.1         a choice (values parsed as YAML scalars)

Algorithms (KerasTuner's): ``random`` samples ``max_trials`` points, ``bayesian``
models the scores seen so far, ``hyperband`` races many short trials, and ``grid``
tries every combination of the values given as lists (``KEY=A,B,C``; a range has no
finite set of values, so grid search refuses one), in order, up to ``max_trials``.

Each trial applies its values on top of the base config (the same layering and
validation as ``kresnet train``), builds and compiles the model exactly as the trainer
does and fits ``training.epochs`` epochs, scored by validation accuracy (never the
test split). Datasets are built once per distinct ``data:`` section. Results land in
``DIRECTORY/``: KerasTuner's trial records (an interrupted search resumes where it
stopped when run again with the same directory), ``tune_results.csv`` (one row per
trial) and ``best_config.yaml``, which ``kresnet train --config`` takes as it is.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from pathlib import Path

import yaml

from keras_resnet import runs

OBJECTIVE = "val_accuracy"
ALGORITHMS = ("random", "bayesian", "hyperband", "grid")
DEFAULT_SPACE = (
    "optimizer.learning_rate=0.02:0.8:log",
    "optimizer.weight_decay=0.0005:0.02:log",
    "training.label_smoothing=0.0,0.1",
)
#: The default space of ``--algorithm grid``: lists of values (3 x 3 x 2 = 18 trials).
DEFAULT_GRID_SPACE = (
    "optimizer.learning_rate=0.05,0.1,0.2",
    "optimizer.weight_decay=0.0005,0.001,0.002",
    "training.label_smoothing=0.0,0.1",
)
DEFAULT_MAX_TRIALS = 10


@dataclasses.dataclass(frozen=True)
class SearchParam:
    """One dimension of the search space.

    Attributes:
        key: Dotted config key, e.g. ``"optimizer.learning_rate"``.
        kind: ``"float"``, ``"int"`` or ``"choice"``.
        low, high: Bounds of a float/int range.
        log: Log-uniform sampling of a range.
        values: The options of a choice.
    """

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    values: tuple = ()

    def sample(self, hp):
        """Register this dimension with a KerasTuner ``HyperParameters`` and return its value."""
        if self.kind == "choice":
            return hp.Choice(self.key, list(self.values))
        sampling = "log" if self.log else "linear"
        if self.kind == "int":
            return hp.Int(self.key, int(self.low), int(self.high), sampling=sampling)
        return hp.Float(self.key, float(self.low), float(self.high), sampling=sampling)


def _number(text: str, item: str):
    value = yaml.safe_load(text)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"Search space bound must be a number. Received: {item!r} (bound {text!r})") from None
    return value


def parse_search_param(item: str) -> SearchParam:
    """Parse ``"key=low:high[:log]"`` or ``"key=a,b,c"``.

    Raises:
        ValueError: naming the item and the accepted forms.

    Example:
        >>> parse_search_param("optimizer.learning_rate=0.01:1:log").log
        True
    """
    if "=" not in item:
        raise ValueError(f"Search space entries look like KEY=LOW:HIGH[:log] or KEY=A,B,C. Received: {item!r}")
    key, spec = (part.strip() for part in item.split("=", 1))
    if not key or not spec:
        raise ValueError(f"Search space entry needs a key and a range. Received: {item!r}")
    if "," in spec:
        values = tuple(yaml.safe_load(v.strip()) for v in spec.split(",") if v.strip())
        if len(values) < 2:
            raise ValueError(f"A choice needs at least two values. Received: {item!r}")
        return SearchParam(key, "choice", values=values)
    parts = spec.split(":")
    log = len(parts) == 3 and parts[2] == "log"
    if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
        raise ValueError(f"A range looks like LOW:HIGH or LOW:HIGH:log. Received: {item!r}")
    low, high = _number(parts[0], item), _number(parts[1], item)
    if not low < high:
        raise ValueError(f"A range needs LOW < HIGH. Received: {item!r}")
    if log and low <= 0:
        raise ValueError(f"A log range needs LOW > 0. Received: {item!r}")
    kind = "int" if isinstance(low, int) and isinstance(high, int) else "float"
    return SearchParam(key, kind, low=low, high=high, log=log)


def check_grid_space(params) -> int:
    """Check that every dimension of a grid search is a list of values; the number of combinations.

    Raises:
        ValueError: naming each range and how to write it as a list.
    """
    ranges = [p for p in params if p.kind != "choice"]
    if ranges:
        example = ranges[0]
        raise ValueError(
            "Grid search tries every combination of values given as lists (KEY=A,B,C); "
            f"these are ranges: {', '.join(_describe(p) for p in ranges)}. "
            f"Give the values to try, e.g. --space {example.key}={example.low},{example.high}, or use --algorithm random."
        )
    return math.prod(len(p.values) for p in params)


def parse_search_space(items, base_config, algorithm: str = "random") -> list[SearchParam]:
    """Parse and check a search space against ``base_config``.

    Every key must exist in the config and every value the space can produce must be
    accepted by it (both bounds, or every choice, are applied and validated), so a bad
    space fails before any training.

    Args:
        items: Strings as in the module docstring (empty: `DEFAULT_SPACE`, or
            `DEFAULT_GRID_SPACE` for grid search).
        base_config: The `TrainConfig` the trials start from.
        algorithm: With ``"grid"``, every dimension must be a list of values.

    Returns:
        The list of `SearchParam`.

    Raises:
        ValueError: a malformed entry, a duplicated or unknown key, a value the
            config rejects (the message names the key and value), or a range in a
            grid search.
    """
    default = DEFAULT_GRID_SPACE if algorithm == "grid" else DEFAULT_SPACE
    params = [parse_search_param(item) for item in (items or default)]
    keys = [p.key for p in params]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValueError(f"Search space names a key twice: {', '.join(duplicates)}")
    if algorithm == "grid":
        check_grid_space(params)
    for param in params:
        for value in param.values if param.kind == "choice" else (param.low, param.high):
            apply_values(base_config, {param.key: value})
    return params


def apply_values(config, values: dict):
    """``config`` with ``{"dotted.key": value}`` applied and validated (like ``--set``)."""
    from keras_resnet.train.config import with_overrides

    return with_overrides(config, values, source="search space")


@dataclasses.dataclass
class TuneResult:
    """What `tune` returns.

    Attributes:
        best_values: The best trial's values by key.
        best_score: Its validation accuracy.
        best_config: The base config with the best values applied.
        directory: The search directory.
        trials: One dict per completed trial (``trial``, ``score`` and the values).
    """

    best_values: dict
    best_score: float
    best_config: object
    directory: Path
    trials: list


def _make_hypermodel(base_config, space, datasets_for):
    import keras_tuner

    from keras_resnet.train.finetune import plan_phases
    from keras_resnet.train.trainer import build_model, compile_model, freeze_for_phase, prepare_model, unwarned_validation_end

    class ResNetHyperModel(keras_tuner.HyperModel):
        """Builds and fits one trial from the base config plus the trial's values."""

        def _trial(self, hp):
            values = {param.key: param.sample(hp) for param in space}
            config = apply_values(base_config, values)
            datasets = datasets_for(config)
            steps = trial_steps(config, datasets)
            return config, datasets, steps

        def build(self, hp):
            config, datasets, steps = self._trial(hp)
            phases = plan_phases(config)
            if len(phases) != 1:
                raise ValueError(
                    "Hyperparameter search runs single-phase training; set finetune.head_epochs: 0. "
                    f"Received: finetune.head_epochs={config.finetune.head_epochs}"
                )
            model = build_model(config.model, len(datasets.class_names), datasets.image_size,
                                preprocessing=datasets.preprocessing)
            prepare_model(model, config, datasets, log=lambda *_: None)
            freeze_for_phase(model, config, phases[0])
            compile_model(model, config, phases[0], steps)
            return model

        def fit(self, hp, model, *args, **kwargs):
            config, datasets, steps = self._trial(hp)
            if datasets.val is None:
                raise ValueError("Hyperparameter search needs a validation split (data.validation_fraction > 0).")
            train = datasets.train.repeat().take(steps * config.training.epochs)
            with unwarned_validation_end(datasets.val, train_sized=True):  # the take() holds every step asked for
                return model.fit(
                    train,
                    validation_data=datasets.val,
                    epochs=kwargs.get("epochs", config.training.epochs),
                    initial_epoch=kwargs.get("initial_epoch", 0),
                    steps_per_epoch=steps,
                    callbacks=kwargs.get("callbacks"),
                    verbose=kwargs.get("verbose", 0),
                    shuffle=False,  # the pipeline shuffles
                )

    return ResNetHyperModel()


def trial_steps(config, datasets) -> int:
    """Training steps per epoch: the train split over the batch size, capped by
    ``training.steps_per_epoch``."""
    size = int(datasets.split_sizes.get("train", 0))
    steps = max(1, math.ceil(size / config.data.batch_size))
    cap = config.training.steps_per_epoch
    return min(steps, cap) if cap else steps


def make_tuner(algorithm: str, hypermodel, directory: Path, max_trials: int | None, epochs: int, seed: int):
    """The KerasTuner tuner for ``algorithm`` (random, bayesian, hyperband, grid), maximising val accuracy.

    ``max_trials`` None: every combination for grid search.
    """
    import keras_tuner

    common = dict(
        objective=keras_tuner.Objective(OBJECTIVE, direction="max"),
        directory=str(directory.parent),
        project_name=directory.name,
        overwrite=False,  # a second call with the same directory resumes the search
        seed=seed,
    )
    if algorithm == "random":
        return keras_tuner.RandomSearch(hypermodel, max_trials=max_trials, **common)
    if algorithm == "bayesian":
        return keras_tuner.BayesianOptimization(hypermodel, max_trials=max_trials, **common)
    if algorithm == "grid":
        return keras_tuner.GridSearch(hypermodel, max_trials=max_trials, **common)
    return keras_tuner.Hyperband(hypermodel, max_epochs=epochs, **common)


def default_tune_dir(config) -> Path:
    """``saved_models/tune-<model>-<dataset>-<time>``."""
    import time

    dataset = Path(config.data.data_dir).name if config.data.data_dir and not config.data.dataset else config.data.dataset
    return runs.DEFAULT_RUNS_ROOT / f"tune-{config.model.name}-{dataset or 'data'}-{time.strftime('%Y%m%d-%H%M%S')}"


#: Share of the training images a search holds out to score trials when the base config
#: has ``data.validation_fraction: 0`` (a recipe that trains its final model on every image).
TUNE_HOLDOUT = 0.1


def tune(
    config, space=(), max_trials: int | None = None, algorithm: str = "random", directory=None, datasets=None, log=print
) -> TuneResult:
    """Search hyperparameters of ``config`` and write the best config.

    Args:
        config: The base `TrainConfig` (``training.epochs`` is the budget per trial).
        space: Search space strings (see module docstring); empty: `DEFAULT_SPACE`
            (`DEFAULT_GRID_SPACE` for grid search).
        max_trials: Trials for random/bayesian search (None: `DEFAULT_MAX_TRIALS`);
            for grid search at most this many combinations (None: all of them).
        algorithm: ``"random"``, ``"bayesian"``, ``"hyperband"`` or ``"grid"``.
        directory: Search directory (default `default_tune_dir`); the same directory
            again resumes the search.
        datasets: Prebuilt datasets for the base ``data:`` section (tests); otherwise
            built with `keras_resnet.data.build_datasets`.
        log: Where progress lines go.

    Returns:
        A `TuneResult`; ``DIRECTORY/best_config.yaml`` and ``tune_results.csv`` written.

    Raises:
        ValueError: bad algorithm, trial count or search space (before any training).

    Example:
        >>> result = tune(load_config("configs/cifar10_resnet20.yaml", overrides={"training.epochs": 2}),
        ...               ["optimizer.learning_rate=0.05:0.5:log"], max_trials=4)
    """
    from keras_resnet.train.config import save_config
    from keras_resnet.train.trainer import with_model_image_size

    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}. Received: algorithm={algorithm!r}")
    if max_trials is not None and (isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1):
        raise ValueError(f"max_trials must be an integer >= 1. Received: max_trials={max_trials!r}")
    config = with_model_image_size(dataclasses.replace(config, run_dir=None))
    params = parse_search_space(space, config, algorithm)
    if algorithm == "grid":
        combinations = check_grid_space(params)
        max_trials = combinations if max_trials is None else min(max_trials, combinations)
    elif max_trials is None:
        max_trials = DEFAULT_MAX_TRIALS
    directory = Path(directory) if directory else default_tune_dir(config)
    directory.parent.mkdir(parents=True, exist_ok=True)

    import keras

    keras.utils.set_random_seed(config.training.seed)
    cache = {}
    if datasets is not None:
        cache[repr(config.data)] = datasets

    def datasets_for(trial_config):
        key = repr(trial_config.data)
        if key not in cache:
            from keras_resnet.data import build_datasets

            cache[key] = build_datasets(trial_config.data, seed=trial_config.training.seed)
        return cache[key]

    search_config = config
    if config.data.validation_fraction == 0 and datasets is None:
        # Trials are scored on held-out images; the final recipe may still train on all of them.
        search_config = dataclasses.replace(config, data=dataclasses.replace(config.data, validation_fraction=TUNE_HOLDOUT))
        log(f"data.validation_fraction is 0: the search holds out {TUNE_HOLDOUT:.0%} of train to score its trials "
            "(a folder's own val/ split is used as is); best_config.yaml keeps 0, so the final run trains on every image.")
    hypermodel = _make_hypermodel(search_config, params, datasets_for)
    tuner = make_tuner(algorithm, hypermodel, directory, max_trials, config.training.epochs, config.training.seed)
    log(f"Search directory: {directory}  ({algorithm}, up to {max_trials} trials, objective {OBJECTIVE})")
    log("Search space: " + "; ".join(_describe(p) for p in params))
    tuner.search(epochs=config.training.epochs, verbose=0)

    trials = completed_trials(tuner, params)
    if not trials:
        raise RuntimeError(f"No trial of the search in {directory} completed; see the errors above.")
    best = max(trials, key=lambda row: row["score"])
    best_values = {p.key: best[p.key] for p in params}
    best_config = apply_values(config, best_values)
    save_config(best_config, directory / "best_config.yaml")
    runs.atomic_write_text(directory / "tune_results.csv", _results_csv(trials, params))
    log(format_trials(trials, params))
    log(f"Best {OBJECTIVE} {best['score']:.4f} (trial {best['trial']}); config: {directory / 'best_config.yaml'}")
    return TuneResult(best_values, best["score"], best_config, directory, trials)


def _describe(param: SearchParam) -> str:
    if param.kind == "choice":
        return f"{param.key} one of {list(param.values)}"
    return f"{param.key} in [{param.low}, {param.high}]{' (log)' if param.log else ''}"


def completed_trials(tuner, params) -> list[dict]:
    """Rows ``{"trial", "score", key: value ...}`` of the tuner's completed trials."""
    rows = []
    for trial in tuner.oracle.trials.values():
        if trial.score is None:
            continue
        row = {"trial": trial.trial_id, "score": float(trial.score)}
        row.update({p.key: trial.hyperparameters.values.get(p.key) for p in params})
        rows.append(row)
    return sorted(rows, key=lambda row: row["trial"])


def _results_csv(trials, params) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["trial", "score", *[p.key for p in params]])
    writer.writeheader()
    writer.writerows(trials)
    return out.getvalue()


def format_trials(trials, params) -> str:
    """The trials as an aligned table, best score first."""
    header = ["trial", OBJECTIVE, *[p.key for p in params]]
    rows = [[str(t["trial"]), f"{t['score']:.4f}", *[f"{t[p.key]:.4g}" if isinstance(t[p.key], float) else str(t[p.key]) for p in params]]
            for t in sorted(trials, key=lambda t: -t["score"])]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows])
