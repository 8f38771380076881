"""The training configuration: dataclasses with defaults, strict YAML, layered overrides.

Layers, each overriding the one before:

1. the dataclass defaults below (`TrainConfig`);
2. a YAML file (``--config``), read with ``yaml.safe_load``; sparse: name only what differs;
3. command-line flags (``--dataset``, ``--epochs`` ... as a ``{"dotted.key": value}`` dict);
4. ``--set a.b=value`` strings, the value parsed as a YAML scalar (``--set optimizer.nesterov=false``).

Every layer is checked against the dataclass type hints (int, float, bool, str,
``X | None``, ``tuple[...]``, ``Literal[...]``, nested dataclasses): an unknown key or a
wrong type raises ``ValueError`` naming the source, the dotted key, the value received
and what was expected, before any TensorFlow work. Floats written like ``1e-4`` (which
YAML 1.1 reads as a string) are accepted for float fields.

Example:
    >>> config = load_config("configs/cifar10_resnet20.yaml", overrides={"training.epochs": 1},
    ...                      set_values=["optimizer.nesterov=false"])
    >>> config.training.epochs
    1
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from keras_resnet.data.options import DataConfig
from keras_resnet.train.finetune import FinetuneConfig


@dataclasses.dataclass
class ModelConfig:
    """The ``model:`` section: which ResNet to build (arguments of `build_resnet`).

    Attributes:
        name: A name from `kresnet models` (``resnet20``, ``resnet50`` ...).
        weights: None (random init), ``"imagenet"``, or a ``.weights.h5``/``.keras``
            file or run directory to start from.
        width_multiplier: Scale every stage's width (1.0 = the paper).
        depth: Depth of ``resnet_cifar``/``resnet_cifar_v2`` (6n+2).
        dropout: Dropout rate in the classifier head.
        pooling: Global pooling of the head.
        hidden_units: Optional hidden Dense layers in the head.
    """

    name: str = "resnet20"
    weights: str | None = None
    width_multiplier: float = 1.0
    depth: int | None = None
    dropout: float = 0.0
    pooling: Literal["avg", "max"] = "avg"
    hidden_units: tuple[int, ...] = ()


@dataclasses.dataclass
class OptimizerConfig:
    """The ``optimizer:`` section.

    Attributes:
        name: ``"sgd"`` (momentum SGD) or ``"adamw"``.
        learning_rate: Peak learning rate for ``reference_batch_size`` images per step;
            the run uses ``learning_rate * data.batch_size / reference_batch_size``
            (the linear scaling rule).
        reference_batch_size: Batch size ``learning_rate`` is given for; None: use
            ``learning_rate`` as is.
        momentum: SGD momentum.
        nesterov: Nesterov momentum (SGD).
        weight_decay: *Decoupled* weight decay, as Keras optimizers apply it:
            ``w -= lr * weight_decay * w`` each step. For momentum SGD this equals a
            classic L2 coefficient of ``weight_decay * (1 - momentum)``: He et al.'s
            L2 1e-4 at momentum 0.9 is ``weight_decay: 1.0e-3``.
        decay_all_variables: Also decay BatchNorm parameters and biases (by default
            only convolution and dense kernels are decayed).
        beta_1: AdamW beta_1.
        beta_2: AdamW beta_2.
        epsilon: AdamW epsilon.
        clipnorm: Clip each gradient to this norm (None: no clipping).
    """

    name: Literal["sgd", "adamw"] = "sgd"
    learning_rate: float = 0.2
    reference_batch_size: int | None = 256
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5.0e-3
    decay_all_variables: bool = False
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1.0e-7
    clipnorm: float | None = None


@dataclasses.dataclass
class ScheduleConfig:
    """The ``schedule:`` section (see `keras_resnet.train.schedules.WarmupSchedule`).

    Attributes:
        name: ``"step"``, ``"cosine"``, ``"one_cycle"`` or ``"constant"``.
        warmup_epochs: Linear warmup length in epochs (fractions allowed); capped at
            half of a phase, so short runs (``--epochs 1``) still decay.
        warmup_start_factor: The warmup starts at this fraction of the peak rate.
        boundaries: ``step``: epochs at which the rate is multiplied by ``decay_rate``.
        decay_rate: ``step``: multiplier at each boundary.
        final_factor: ``cosine``/``one_cycle``: final rate as a fraction of the peak.
    """

    name: Literal["step", "cosine", "one_cycle", "constant"] = "one_cycle"
    warmup_epochs: float = 5.0
    warmup_start_factor: float = 0.1
    boundaries: tuple[float, ...] = ()
    decay_rate: float = 0.1
    final_factor: float = 0.001


@dataclasses.dataclass
class TrainingConfig:
    """The ``training:`` section.

    Attributes:
        epochs: Total epochs (all fine-tuning phases together).
        seed: Seeds Python, NumPy, TensorFlow and the data pipeline.
        deterministic: Deterministic ops (``tf.config.experimental.enable_op_determinism``):
            slower, bit-for-bit repeatable on the same machine.
        precision: ``float32``, ``mixed_float16`` (GPUs) or ``mixed_bfloat16`` (TPUs,
            recent CPUs); the classifier head always computes in float32.
        strategy: ``auto`` (MirroredStrategy when more than one GPU is visible),
            ``default``, ``mirrored``, ``multi_worker`` (reads ``TF_CONFIG``) or ``tpu``.
        label_smoothing: Label smoothing of the categorical cross-entropy.
        early_stopping_patience: Stop after this many epochs without improving
            ``monitor`` (None: never).
        monitor: Metric deciding ``best.keras`` and early stopping.
        steps_per_epoch: Cap on training steps per epoch (None: the whole split).
        steps_per_execution: Steps run inside one ``tf.function`` call.
        progress: ``bar`` (Keras progress bar), ``epoch`` (one line per epoch) or ``none``.
        tensorboard: Write TensorBoard logs to ``RUN/logs``.
        evaluate_split: Split evaluated at the end (``metrics.json``); ``none`` to skip.
    """

    epochs: int = 30
    seed: int = 0
    deterministic: bool = False
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"
    strategy: Literal["auto", "default", "mirrored", "multi_worker", "tpu"] = "auto"
    label_smoothing: float = 0.1
    early_stopping_patience: int | None = None
    monitor: Literal["val_accuracy", "val_loss"] = "val_accuracy"
    steps_per_epoch: int | None = None
    steps_per_execution: int = 1
    progress: Literal["bar", "epoch", "none"] = "bar"
    tensorboard: bool = True
    evaluate_split: Literal["test", "val", "none"] = "test"


@dataclasses.dataclass
class TrainConfig:
    """A whole training run.

    Attributes:
        data: `keras_resnet.data.options.DataConfig` (dataset, batch size, augmentation).
        model: `ModelConfig`.
        optimizer: `OptimizerConfig`.
        schedule: `ScheduleConfig`.
        training: `TrainingConfig`.
        finetune: `keras_resnet.train.finetune.FinetuneConfig`.
        run_dir: Where the run is written; None: ``saved_models/<model>-<dataset>-<time>``.
            Running again with the same ``run_dir`` resumes an interrupted run.
    """

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    finetune: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)
    run_dir: str | None = None


# ------------------------------------------------------------------ strict conversion


class _Mismatch(Exception):
    """A value that does not fit a type hint (internal; becomes a ValueError)."""

    def __init__(self, path: str, value: Any, expected: str, unknown_key: bool = False):
        super().__init__(path, value, expected)
        self.path, self.value, self.expected, self.unknown_key = path, value, expected, unknown_key


def _describe(hint) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in typing.get_args(hint))
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0])}"
        return f"a list of {len(args)} items ({', '.join(_describe(a) for a in args)})"
    if dataclasses.is_dataclass(hint):
        return f"a mapping with keys {', '.join(f.name for f in dataclasses.fields(hint))}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(hint, str(hint))


def _convert(value: Any, hint, path: str, default=None):
    """``value`` converted to ``hint``; raises `_Mismatch` naming ``path``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, path, default)
            except _Mismatch as error:
                if dataclasses.is_dataclass(arg) and isinstance(value, dict):
                    raise  # the nested error names the exact key
        raise _Mismatch(path, value, _describe(hint))
    if origin is Literal:
        for choice in typing.get_args(hint):
            if type(value) is type(choice) and value == choice:
                return value
        raise _Mismatch(path, value, _describe(hint))
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise _Mismatch(path, value, _describe(hint))
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise _Mismatch(path, value, _describe(hint))
        return tuple(_convert(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise _Mismatch(path, value, _describe(hint))
        return _merge(default if default is not None else hint(), value, path)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    raise _Mismatch(path, value, _describe(hint))


def _merge(instance, data: dict, path: str = ""):
    """A copy of dataclass ``instance`` with the keys of ``data`` converted and set."""
    hints = typing.get_type_hints(type(instance))
    names = [f.name for f in dataclasses.fields(instance)]
    changes = {}
    for key, value in data.items():
        dotted = f"{path}.{key}" if path else str(key)
        if key not in names:
            raise _Mismatch(dotted, value, "one of " + ", ".join(names), unknown_key=True)
        changes[key] = _convert(value, hints[key], dotted, getattr(instance, key))
    try:
        return dataclasses.replace(instance, **changes)
    except ValueError as error:  # a section's own __post_init__ validation
        raise _Mismatch(path or "(top level)", data, str(error)) from None


def _apply(config: TrainConfig, data: dict, source: str) -> TrainConfig:
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping of config sections at the top level. Received: {data!r}")
    try:
        return _merge(config, data)
    except _Mismatch as error:
        if error.unknown_key:
            raise ValueError(
                f"{source}: unknown config key '{error.path}' (value {error.value!r}). "
                f"Expected {error.expected}."
            ) from None
        raise ValueError(
            f"{source}: invalid value for '{error.path}'. Expected {error.expected}. "
            f"Received: {error.path}={error.value!r} ({type(error.value).__name__})"
        ) from None


def _nest(dotted: dict[str, Any]) -> dict:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``."""
    nested: dict = {}
    for key, value in dotted.items():
        parts = str(key).split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"Conflicting overrides for '{key}'. Received: {dotted!r}")
        node[parts[-1]] = value
    return nested


def parse_set_value(item: str) -> tuple[str, Any]:
    """Split a ``--set`` item ``"a.b=value"`` into the key and the YAML-parsed value.

    Example:
        >>> parse_set_value("optimizer.weight_decay=5e-4")
        ('optimizer.weight_decay', '5e-4')
        >>> parse_set_value("model.hidden_units=[256, 128]")
        ('model.hidden_units', [256, 128])
    """
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set expects KEY=VALUE (e.g. training.epochs=5). Received: {item!r}")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    return key.strip(), value


def read_yaml(path: str | Path) -> dict:
    """Read a YAML config file with ``yaml.safe_load`` (an empty file is ``{}``).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for invalid YAML or a top level that is not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Config file not found: {path}. Expected a YAML file such as configs/cifar10_resnet20.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML: {error}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config sections at the top level. Received: {data!r}")
    return data


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    set_values: list[str] | tuple[str, ...] = (),
) -> TrainConfig:
    """Build a `TrainConfig`: defaults -> YAML file -> ``overrides`` -> ``set_values``.

    Args:
        path: A YAML file (sparse: only the keys that differ from the defaults).
        overrides: ``{"dotted.key": value}`` from command-line flags (only the flags
            given; a None value sets the key to null).
        set_values: ``"dotted.key=value"`` strings; values parsed as YAML scalars.

    Returns:
        The validated config.

    Raises:
        ValueError: naming the source, the dotted key, the value and what was expected,
            for unknown keys, wrong types and values out of range.
        FileNotFoundError: if ``path`` does not exist.

    Example:
        >>> load_config(overrides={"data.dataset": "cifar10", "training.epochs": 2}).training.epochs
        2
    """
    config = TrainConfig()
    if path is not None:
        config = _apply(config, read_yaml(path), str(path))
    if overrides:
        config = _apply(config, _nest(dict(overrides)), "command-line flags")
    for item in set_values:
        key, value = parse_set_value(item)
        config = _apply(config, _nest({key: value}), f"--set {item}")
    validate_config(config)
    return config


def with_overrides(config: TrainConfig, overrides: dict[str, Any], source: str = "overrides") -> TrainConfig:
    """``config`` with ``{"dotted.key": value}`` applied and the result validated.

    Args:
        config: A `TrainConfig`.
        overrides: Dotted keys and their values (checked like YAML values).
        source: Named in error messages.

    Raises:
        ValueError: unknown key, wrong type or out-of-range value, naming them.

    Example:
        >>> with_overrides(TrainConfig(), {"training.epochs": 3}).training.epochs
        3
    """
    config = _apply(config, _nest(dict(overrides)), source)
    validate_config(config)
    return config


def _check(ok: bool, key: str, value, expected: str) -> None:
    if not ok:
        raise ValueError(f"Invalid config value: {key} must be {expected}. Received: {key}={value!r}")


def validate_config(config: TrainConfig) -> None:
    """Check ranges and cross-field rules that type hints cannot express.

    Raises:
        ValueError: naming the dotted key, its value and what is expected.
    """
    from keras_resnet.data.options import validate_data_config
    from keras_resnet.models.specs import get_spec

    try:
        get_spec(config.model.name, config.model.depth)
    except ValueError as error:
        raise ValueError(f"Invalid config value for model.name / model.depth: {error}") from None
    validate_data_config(config.data)
    t, o, s = config.training, config.optimizer, config.schedule
    _check(t.epochs >= 1, "training.epochs", t.epochs, "an integer >= 1")
    _check(config.data.batch_size >= 1, "data.batch_size", config.data.batch_size, "an integer >= 1")
    _check(0.0 <= t.label_smoothing < 1.0, "training.label_smoothing", t.label_smoothing, "in [0, 1)")
    _check(o.learning_rate > 0, "optimizer.learning_rate", o.learning_rate, "> 0")
    _check(o.reference_batch_size is None or o.reference_batch_size >= 1, "optimizer.reference_batch_size",
           o.reference_batch_size, "an integer >= 1 or null")
    _check(0.0 <= o.momentum < 1.0, "optimizer.momentum", o.momentum, "in [0, 1)")
    _check(o.weight_decay >= 0, "optimizer.weight_decay", o.weight_decay, ">= 0")
    _check(o.clipnorm is None or o.clipnorm > 0, "optimizer.clipnorm", o.clipnorm, "> 0 or null")
    _check(s.warmup_epochs >= 0, "schedule.warmup_epochs", s.warmup_epochs, ">= 0")
    _check(list(s.boundaries) == sorted(s.boundaries) and all(b > 0 for b in s.boundaries),
           "schedule.boundaries", s.boundaries, "increasing positive epochs")
    _check(0.0 <= s.warmup_start_factor <= 1.0, "schedule.warmup_start_factor", s.warmup_start_factor, "in [0, 1]")
    _check(0.0 <= s.final_factor <= 1.0, "schedule.final_factor", s.final_factor, "in [0, 1]")
    _check(0.0 <= config.model.dropout < 1.0, "model.dropout", config.model.dropout, "in [0, 1)")
    _check(config.model.width_multiplier > 0, "model.width_multiplier", config.model.width_multiplier, "> 0")
    _check(t.early_stopping_patience is None or t.early_stopping_patience >= 1,
           "training.early_stopping_patience", t.early_stopping_patience, "an integer >= 1 or null")
    _check(t.steps_per_epoch is None or t.steps_per_epoch >= 1, "training.steps_per_epoch", t.steps_per_epoch,
           "an integer >= 1 or null")
    _check(t.steps_per_execution >= 1, "training.steps_per_execution", t.steps_per_execution, "an integer >= 1")
    _check(config.finetune.head_epochs < t.epochs or config.finetune.head_epochs == 0, "finetune.head_epochs",
           config.finetune.head_epochs, f"less than training.epochs={t.epochs}")


def config_to_dict(config) -> dict:
    """A dataclass config as plain YAML-safe data (tuples become lists).

    Example:
        >>> config_to_dict(TrainConfig())["training"]["epochs"]
        30
    """

    def plain(value):
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(config)


def config_to_yaml(config) -> str:
    """The config as YAML text (section order kept)."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=None)


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML, atomically; `load_config` reads it back equal.

    Returns:
        ``path`` as a ``Path``.
    """
    from keras_resnet.runs import atomic_write_text

    return atomic_write_text(path, config_to_yaml(config))


def configs_dir(package_root: Path) -> Path:
    """Where the recipes are: ``keras_resnet/recipes/`` in a wheel install, else ``configs/``.

    A wheel ships the repository's ``configs/`` as the package ``keras_resnet.recipes``
    (see pyproject.toml); a source checkout or editable install reads ``configs/`` beside
    the package.

    Args:
        package_root: The ``keras_resnet`` package directory.

    Returns:
        The recipe directory (which may not exist when neither is installed).
    """
    installed = package_root / "recipes"
    return installed if installed.is_dir() else package_root.parent / "configs"


CONFIGS_DIR = configs_dir(Path(__file__).resolve().parents[1])
DEFAULT_RECIPES = {"cifar10": "cifar10_resnet20"}


def find_recipe(name_or_path: str | Path) -> Path:
    """A config file from a path or a recipe name in ``configs/`` (``"cifar10_resnet56"``).

    Raises:
        FileNotFoundError: naming the path tried and the recipes available.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    recipe = CONFIGS_DIR / f"{path.name}.yaml" if path.suffix == "" else CONFIGS_DIR / path.name
    if len(path.parts) == 1 and recipe.is_file():
        return recipe
    available = sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml")) if CONFIGS_DIR.is_dir() else []
    raise FileNotFoundError(
        f"Config file not found: {name_or_path}. Expected a YAML path or a recipe name, one of: "
        f"{', '.join(available) or '(no configs/ directory)'}"
    )


def default_recipe(dataset: str | None) -> Path | None:
    """The recipe used when no ``--config`` is given: ``configs/cifar10_resnet20.yaml`` for cifar10.

    Returns:
        The recipe path, or None (built-in defaults) for other datasets or when the
        ``configs/`` directory is not installed.
    """
    name = DEFAULT_RECIPES.get(dataset or "")
    path = CONFIGS_DIR / f"{name}.yaml" if name else None
    return path if path is not None and path.is_file() else None
