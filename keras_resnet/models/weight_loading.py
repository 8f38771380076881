"""Loading weights into a model by layer name, with a report: `load_pretrained` and its parts.

`load_pretrained` (what ``build_resnet(weights=...)`` calls) accepts ``"imagenet"``
(resolved by `keras_resnet.models.weight_cache.imagenet_weights_file`) or a path that
`keras_resnet.models.weight_files.read_weights` reads. Layers are matched by **name**;
every weight's shape is checked before anything is assigned. The head is skipped when
its shape differs (another class count); any backbone layer missing or of another
shape raises, unless ``allow_partial=True``. The `LoadReport` lists what loaded, what
was skipped and why, and what is missing: there is no silent partial load.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from keras_resnet.models.naming import is_head_layer, leaf_layers
from keras_resnet.models.specs import ResNetSpec
from keras_resnet.models.weight_cache import imagenet_weights_file
from keras_resnet.models.weight_files import read_weights


@dataclasses.dataclass
class LoadReport:
    """What `load_pretrained` did, layer by layer.

    Attributes:
        source: The file the weights came from.
        loaded: Layers whose weights were set.
        skipped: ``(layer, reason)`` for layers present in the file but not loaded
            (e.g. the head with another class count).
        missing: Model layers with weights that the file does not have.
        unused: Layers in the file that the model does not have.
    """

    source: str
    loaded: list[str] = dataclasses.field(default_factory=list)
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)
    unused: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        """The report as text.

        Returns:
            A few printable lines: counts, then every skipped/missing layer with its reason.
        """
        lines = [
            f"Pretrained weights from {self.source}: {len(self.loaded)} layers loaded, "
            f"{len(self.skipped)} skipped, {len(self.missing)} missing, {len(self.unused)} unused in file."
        ]
        lines += [f"  skipped {name}: {reason}" for name, reason in self.skipped]
        lines += [f"  missing {name}: not in the file, keeps its initial values" for name in self.missing]
        if self.unused:
            shown = ", ".join(self.unused[:8]) + (" ..." if len(self.unused) > 8 else "")
            lines.append(f"  unused in file: {shown}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def assign_by_name(
    model, weights: dict, source: str, allow_partial: bool = False, skip_head: bool = False
) -> LoadReport:
    """Set ``model``'s layer weights from ``{layer name: arrays}`` after checking every shape.

    Nothing is assigned unless all checks pass.

    Args:
        model: The target model.
        weights: From `read_weights` or the converter.
        source: Where the weights came from (for the report).
        allow_partial: Load what matches even if backbone layers are missing from
            the file or differ in shape.
        skip_head: Leave the head (``predictions``, ``head_*``) as initialised even
            when the file's head fits: for a new task with as many classes as the old.

    Returns:
        The `LoadReport`.

    Raises:
        ValueError: no layer matched; or (unless ``allow_partial``) a backbone layer
            has another shape or is missing. The message lists the layers.
    """
    report = LoadReport(source=str(source))
    to_set = []
    errors = []
    model_names = set()
    for layer in leaf_layers(model):
        if not layer.weights:
            continue
        model_names.add(layer.name)
        if skip_head and is_head_layer(layer.name) and layer.name in weights:
            report.skipped.append((layer.name, "skip_head=True: the new head keeps its initial values"))
            continue
        if layer.name not in weights:
            report.missing.append(layer.name)
            if not is_head_layer(layer.name):
                errors.append(f"{layer.name}: missing from the file")
            continue
        arrays = weights[layer.name]
        want = [tuple(v.shape) for v in layer.weights]
        have = [tuple(np.shape(a)) for a in arrays]
        if want != have:
            reason = f"shapes {have} in file, {want} in model"
            if is_head_layer(layer.name):
                reason = "head differs (another class count or head structure): " + reason
            else:
                errors.append(f"{layer.name}: {reason}")
            report.skipped.append((layer.name, reason))
            continue
        to_set.append((layer, arrays))
        report.loaded.append(layer.name)
    report.unused = [n for n in weights if n not in model_names]
    if not to_set and not report.skipped:  # not even a name in common
        raise ValueError(
            f"No layer of model {model.name!r} matched a layer in {source} by name. "
            f"File layers start with: {', '.join(report.unused[:5]) or '(none)'}; model layers with weights "
            f"start with: {', '.join(sorted(model_names)[:5])}."
        )
    if errors and not allow_partial:
        shown = "\n  ".join(errors[:10]) + ("\n  ..." if len(errors) > 10 else "")
        raise ValueError(
            f"{len(errors)} backbone layers of {model.name!r} cannot be loaded from {source} "
            "(to load the rest anyway: set model.allow_partial_weights: true in the training config, "
            f"e.g. --set model.allow_partial_weights=true; in Python, allow_partial=True):\n  {shown}"
        )
    if not to_set:
        raise ValueError(f"No layer of model {model.name!r} could be loaded from {source}:\n{report.summary()}")
    for layer, arrays in to_set:
        layer.set_weights(arrays)
    return report


def load_pretrained(
    model,
    spec: ResNetSpec | None,
    weights,
    include_top: bool = True,
    allow_partial: bool = False,
    skip_head: bool = False,
    verbose: bool = True,
) -> LoadReport:
    """Load pretrained weights into ``model`` by layer name and report what happened.

    Args:
        model: The freshly built model (``build_resnet`` calls this).
        spec: Its `ResNetSpec` (needed for ``"imagenet"``).
        weights: ``"imagenet"``, or a path: ``.keras`` file, run directory,
            ``.weights.h5`` or legacy ``.h5`` file.
        include_top: Whether ``model`` has the classifier head.
        allow_partial: Load what matches even if backbone layers are missing or
            differ in shape (they are reported either way).
        skip_head: Do not load the head even if it fits (a new task that happens
            to have the old class count).
        verbose: Print the report's summary.

    Returns:
        The `LoadReport`.

    Raises:
        ValueError: no ImageNet weights for this model, or layers that do not fit.
        PretrainedWeightsUnavailable: ImageNet weights neither cached nor downloadable.
        FileNotFoundError: a path that does not exist.

    Example:
        >>> model = build_resnet("resnet50", num_classes=5, weights="imagenet")
        Pretrained weights from ~/.keras/models/resnet50_..._notop.h5: 106 layers loaded, ...
    """
    if isinstance(weights, str) and weights == "imagenet":
        if spec is None:
            raise ValueError("weights='imagenet' needs the model's spec. Received: spec=None")
        head = model.get_layer("predictions") if include_top and _has_layer(model, "predictions") else None
        with_top = head is not None and head.units == 1000 and not any(
            layer.name.startswith("head_dense_") for layer in model.layers
        )
        path = imagenet_weights_file(spec, include_top=with_top)
    else:
        path = Path(weights)
    report = assign_by_name(
        model, read_weights(path, model), str(path), allow_partial=allow_partial, skip_head=skip_head
    )
    if verbose:
        print(report.summary())
    return report


def _has_layer(model, name: str) -> bool:
    return any(layer.name == name for layer in model.layers)


def save_weights(model, path: str | os.PathLike) -> Path:
    """``model.save_weights(path)`` atomically (a failed write keeps the old file, a full disk is an ``OSError``).

    Args:
        model: The model.
        path: Destination ending in ``.weights.h5``.

    Returns:
        ``path`` as a ``Path``.
    """
    from keras_resnet.compat import weights_h5_bytes
    from keras_resnet.runs import atomic_path

    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"Weights files must end in '.weights.h5'. Received: path={str(path)!r}")
    data = weights_h5_bytes(model)  # built in memory: h5py writing to a full disk crashes the process
    with atomic_path(path, suffix=".weights.h5") as tmp:
        tmp.write_bytes(data)
    return path
