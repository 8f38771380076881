"""Allowed values, written once as ``Literal`` type hints and read with `typing.get_args`.

The config schema (`keras_resnet.config.schema`, `keras_resnet.config.data`) types
every closed set of values as a ``Literal``; the YAML loader checks values against
those hints, `check_literals` checks dataclasses built in code, and the command line
builds its ``click.Choice`` lists with `choices`. Options of commands that are not
config keys (export format, quantisation, prediction output, search algorithm) have
their ``Literal`` here, so the CLI can offer them without importing the modules that
implement them (and TensorFlow).

Example:
    >>> choices(Quantization)
    ('none', 'float16', 'dynamic', 'int8')
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Literal

#: ``kresnet export --format`` (`keras_resnet.export.exporter.FORMATS`).
ExportFormat = Literal["keras", "savedmodel", "tflite", "onnx"]
#: ``kresnet export --quantize`` (`keras_resnet.export.tflite.QUANTIZATIONS`).
Quantization = Literal["none", "float16", "dynamic", "int8"]
#: ``kresnet predict --format`` (`keras_resnet.export.predict.OUTPUT_FORMATS`).
PredictFormat = Literal["table", "json", "csv"]
#: ``kresnet tune --algorithm`` (`keras_resnet.tune.ALGORITHMS`).
SearchAlgorithm = Literal["random", "bayesian", "hyperband", "grid"]


def choices(hint) -> tuple:
    """The values a ``Literal`` hint allows, in order (``X | None`` and nested Literals included).

    Args:
        hint: A ``Literal[...]``, or ``Literal[...] | None``.

    Returns:
        The allowed values, e.g. ``("sgd", "adamw")``.

    Raises:
        TypeError: if ``hint`` holds no ``Literal``.
    """
    origin = typing.get_origin(hint)
    if origin is Literal:
        return typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        literals = [arg for arg in typing.get_args(hint) if typing.get_origin(arg) is Literal]
        found = tuple(value for arg in literals for value in typing.get_args(arg))
        if found:
            return found
    raise TypeError(f"Expected a Literal type hint. Received: {hint!r}")


def literal_fields(cls) -> dict[str, tuple]:
    """``{field name: allowed values}`` of the ``Literal``-typed fields of dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    found = {}
    for field in dataclasses.fields(cls):
        try:
            found[field.name] = choices(hints[field.name])
        except TypeError:
            continue
    return found


def check_literals(instance, path: str) -> None:
    """Check every ``Literal`` field of a dataclass instance (not nested ones).

    The YAML loader checks values as it reads them; this catches a dataclass built in
    code with a bad value (``DataConfig(cache="gpu")``).

    Args:
        instance: A dataclass instance.
        path: Its dotted config path, for the message (``"data"``).

    Raises:
        ValueError: ``"{path}.{field} must be one of (...). Received: {field}=value"``.
    """
    hints = typing.get_type_hints(type(instance))
    for name, allowed in literal_fields(type(instance)).items():
        value = getattr(instance, name)
        if value is None and type(None) in typing.get_args(hints[name]):
            continue
        if value not in allowed:
            raise ValueError(f"{path}.{name} must be one of {allowed}. Received: {name}={value!r}")
