"""The strict config loader: dataclass defaults, sparse YAML, layered overrides.

Layers, each overriding the one before:

1. the dataclass defaults (`keras_resnet.config.schema.TrainConfig`);
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
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from keras_resnet.config.choices import check_literals
from keras_resnet.config.data import validate_data_config
from keras_resnet.config.schema import TrainConfig, validate_finetune_config

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
    return {int: "an integer", float: "a finite number", bool: "true or false", str: "a string"}.get(hint, str(hint))


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
            except _Mismatch:
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
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
            except ValueError:
                pass
        if number is not None:
            if not math.isfinite(number):  # .inf, .nan, 1e999, --learning-rate inf
                raise _Mismatch(path, value, "a finite number")
            return number
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
        raise FileNotFoundError(
            f"Config file not found: {path}. Expected a YAML file such as configs/cifar10_resnet20.yaml"
        )
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
    """Check ranges, choices and cross-field rules of a whole config.

    The model name is not checked here (this layer does not know the model table):
    `keras_resnet.train.config.validate_config` adds that check.

    Raises:
        ValueError: naming the dotted key, its value and what is expected.
    """
    for key, value in _numbers(config):
        _check(math.isfinite(value), key, value, "a finite number")
    validate_data_config(config.data)
    validate_finetune_config(config.finetune)
    for name in ("model", "optimizer", "schedule", "training"):
        check_literals(getattr(config, name), name)
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
    _check(o.ema_momentum is None or 0.0 < o.ema_momentum < 1.0, "optimizer.ema_momentum", o.ema_momentum,
           "in (0, 1), e.g. 0.999, or null (off)")
    _check(s.warmup_epochs >= 0, "schedule.warmup_epochs", s.warmup_epochs, ">= 0")
    _check(list(s.boundaries) == sorted(s.boundaries) and all(b > 0 for b in s.boundaries),
           "schedule.boundaries", s.boundaries, "increasing positive epochs")
    _check(0.0 <= s.warmup_start_factor <= 1.0, "schedule.warmup_start_factor", s.warmup_start_factor, "in [0, 1]")
    _check(0.0 <= s.final_factor <= 1.0, "schedule.final_factor", s.final_factor, "in [0, 1]")
    _check(0.0 <= config.model.dropout < 1.0, "model.dropout", config.model.dropout, "in [0, 1)")
    _check(config.model.stem_init == "random" or config.model.weights is None, "model.stem_init",
           config.model.stem_init, f"'random' when model.weights is set (whitening would overwrite the stem of "
           f"{config.model.weights!r})")
    _check(not config.model.zero_init_residual or config.model.weights is None, "model.zero_init_residual",
           config.model.zero_init_residual, f"false when model.weights is set (it would zero trained layers of "
           f"{config.model.weights!r})")
    _check(config.model.width_multiplier > 0, "model.width_multiplier", config.model.width_multiplier, "> 0")
    _check(t.early_stopping_patience is None or t.early_stopping_patience >= 1,
           "training.early_stopping_patience", t.early_stopping_patience, "an integer >= 1 or null")
    _check(t.steps_per_epoch is None or t.steps_per_epoch >= 1, "training.steps_per_epoch", t.steps_per_epoch,
           "an integer >= 1 or null")
    _check(t.steps_per_execution >= 1, "training.steps_per_execution", t.steps_per_execution, "an integer >= 1")
    _check(config.finetune.head_epochs < t.epochs or config.finetune.head_epochs == 0, "finetune.head_epochs",
           config.finetune.head_epochs, f"less than training.epochs={t.epochs}")


def _numbers(config, prefix: str = ""):
    """``(dotted key, float)`` of every float in a dataclass config, lists included."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            yield from _numbers(value, f"{key}.")
        elif isinstance(value, (list, tuple)):
            yield from ((f"{key}[{i}]", v) for i, v in enumerate(value) if isinstance(v, float))
        elif isinstance(value, float):
            yield key, value


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
