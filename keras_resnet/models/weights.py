"""Pretrained weights: ImageNet files, earlier runs, and torchvision/timm conversion.

`load_pretrained` (what ``build_resnet(weights=...)`` calls) accepts:

* ``"imagenet"``:
    - ResNet-50/101/152 and their v2: the official keras.applications files
      (same names, hashes and URL as ``keras.applications.resnet``), fetched with
      ``keras.utils.get_file`` into Keras' cache (``$KERAS_HOME/models``, default
      ``~/.keras/models``). Offline, `PretrainedWeightsUnavailable` names the URL to
      fetch and the path to put the file at.
    - ResNet-18/34: a file converted from a torchvision/timm checkpoint with
      ``kresnet convert-weights resnet18 resnet18.safetensors``, read from
      ``$KERAS_HOME/models/kresnet/resnet18_imagenet.weights.h5``.
* a path: a ``.keras`` model, a run directory (its ``model.keras``), a
  ``.weights.h5`` file saved by ``model.save_weights``, or a legacy ``.h5`` file
  (keras.applications' ``*_weights_tf_dim_ordering_tf_kernels*.h5``).

Layers are matched by **name** (a Keras 3 ``.weights.h5`` stores no names, only
class-and-order keys; it is matched against the model's own layers in that order,
which holds for files saved from the same architecture). Every weight's shape is
checked before anything is assigned. The head is skipped when its shape differs
(another class count); any backbone layer missing or of another shape raises,
unless ``allow_partial=True``. The `LoadReport` lists what loaded, what was
skipped and why, and what is missing: there is no silent partial load.

The converter maps torchvision's state-dict keys to our layer names::

    conv1.weight                     -> conv1_conv kernel, (O,I,kh,kw) -> (kh,kw,I,O)
    bn1.{weight,bias,running_mean,running_var} -> conv1_bn gamma/beta/moving_mean/moving_variance
    layer{X}.{Y}.conv{Z} / bn{Z}     -> conv{X+1}_block{Y+1}_{Z}_conv / _bn
    layer{X}.{Y}.downsample.0 / .1   -> conv{X+1}_block{Y+1}_0_conv / _0_bn
    fc.weight / fc.bias              -> predictions kernel (transposed) / bias
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import numpy as np

from keras_resnet.models.specs import CIFAR_STEM, ResNetSpec, get_spec

#: keras.applications' download location and (top, notop) md5 hashes, as in
#: ``keras/src/applications/resnet.py``.
KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
KERAS_WEIGHTS_HASHES = {
    "resnet50": ("2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
    "resnet101": ("f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"),
    "resnet152": ("100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c"),
    "resnet50v2": ("3ef43a0b657b3be2300d5770ece849e0", "fac2f116257151a9d068a22e544a4917"),
    "resnet101v2": ("6343647c601c52e1368623803854d971", "c0ed64b8031c3730f411d2eb4eea35b5"),
    "resnet152v2": ("a49b44d1979771252814e80f8ec446f9", "ed17cf2e0169df9d443503ef94b23b33"),
}
#: Our model name -> keras.applications' weights name.
KERAS_APPLICATIONS_NAMES = {
    "resnet50": "resnet50",
    "resnet101": "resnet101",
    "resnet152": "resnet152",
    "resnet50_v2": "resnet50v2",
    "resnet101_v2": "resnet101v2",
    "resnet152_v2": "resnet152v2",
}
#: Models whose ImageNet weights come from a converted torchvision/timm checkpoint.
CONVERTIBLE_MODELS = ("resnet18", "resnet34")
IMAGENET_MODELS = tuple(KERAS_APPLICATIONS_NAMES) + CONVERTIBLE_MODELS

_HEAD_NAMES = ("avg_pool", "max_pool", "predictions")
_BN_TORCH_TO_KERAS = {"weight": 0, "bias": 1, "running_mean": 2, "running_var": 3}


class PretrainedWeightsUnavailable(FileNotFoundError):
    """Pretrained weights are neither in the cache nor downloadable (e.g. offline).

    The message names what to fetch (a URL, or the convert-weights command) and
    the exact path to put the file at.
    """


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
        """A few printable lines: counts, then every skipped/missing layer with its reason."""
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


# ------------------------------------------------------------------------ cache paths


def keras_cache_dir() -> Path:
    """Keras' cache root: ``$KERAS_HOME``, else ``~/.keras`` (``/tmp/.keras`` if not writable).

    Read at call time, so setting ``KERAS_HOME`` after import takes effect.
    """
    if os.environ.get("KERAS_HOME"):
        return Path(os.environ["KERAS_HOME"])
    home = os.path.expanduser("~")
    return Path(home if os.access(home, os.W_OK) else "/tmp") / ".keras"


def converted_weights_path(name: str) -> Path:
    """Where ``imagenet`` weights of a converted model (ResNet-18/34) are looked up.

    Returns:
        ``$KERAS_HOME/models/kresnet/{name}_imagenet.weights.h5``.
    """
    return keras_cache_dir() / "models" / "kresnet" / f"{name}_imagenet.weights.h5"


def keras_applications_file(name: str, include_top: bool) -> tuple[str, str, str]:
    """File name, URL and md5 of keras.applications' ImageNet weights for ``name``.

    Args:
        name: ``"resnet50"`` .. ``"resnet152_v2"``.
        include_top: The file with the 1000-class ``predictions`` layer, or ``_notop``.

    Returns:
        ``(file_name, url, md5)``.
    """
    weights_name = KERAS_APPLICATIONS_NAMES[name]
    suffix = "" if include_top else "_notop"
    file_name = f"{weights_name}_weights_tf_dim_ordering_tf_kernels{suffix}.h5"
    file_hash = KERAS_WEIGHTS_HASHES[weights_name][0 if include_top else 1]
    return file_name, KERAS_WEIGHTS_URL + file_name, file_hash


def _download(file_name: str, url: str, file_hash: str, cache_dir: Path) -> str:
    """``keras.utils.get_file`` into ``cache_dir/models`` (a seam tests replace)."""
    import keras

    return keras.utils.get_file(file_name, url, cache_subdir="models", file_hash=file_hash, cache_dir=str(cache_dir))


def imagenet_weights_file(spec: ResNetSpec, include_top: bool = True) -> Path:
    """Find (or download) the ImageNet weights file of a model.

    Args:
        spec: The model's spec.
        include_top: Whether the 1000-class head is wanted (keras.applications
            models come as a top and a ``_notop`` file).

    Returns:
        The local path of the file.

    Raises:
        ValueError: the model has no ImageNet weights (lists those that do).
        PretrainedWeightsUnavailable: not cached and not downloadable; the message
            names the URL (or convert command) and the cache path.
    """
    if spec.name not in IMAGENET_MODELS:
        kind = "CIFAR ResNets are trained from scratch" if spec.stem == CIFAR_STEM else "none are published"
        raise ValueError(
            f"No ImageNet weights for {spec.name!r} ({kind}). Models with ImageNet weights: "
            f"{', '.join(IMAGENET_MODELS)}. Received: name={spec.name!r}, weights='imagenet'"
        )
    if spec.name in CONVERTIBLE_MODELS:
        path = converted_weights_path(spec.name)
        if path.is_file():
            return path
        raise PretrainedWeightsUnavailable(
            f"ImageNet weights for {spec.name} are converted from a torchvision or timm checkpoint and "
            f"were not found at {path}. Download e.g. timm's '{spec.name}.tv_in1k' model.safetensors (or "
            f"torchvision's {spec.name}-*.pth), then run:\n"
            f"  kresnet convert-weights {spec.name} {spec.name}.safetensors -o {path}"
        )
    cache = keras_cache_dir()
    file_name, url, file_hash = keras_applications_file(spec.name, include_top)
    target = cache / "models" / file_name
    if target.is_file():
        if not _md5_matches(target, file_hash):
            raise PretrainedWeightsUnavailable(
                f"{target} exists but its md5 is not {file_hash} (incomplete or a different file). "
                f"Delete it and fetch {url} again into {target.parent}/"
            )
        return target
    try:
        return Path(_download(file_name, url, file_hash, cache))
    except Exception as error:  # get_file raises a bare Exception for URL errors
        raise PretrainedWeightsUnavailable(
            f"Could not download ImageNet weights for {spec.name} ({error}). Fetch the file by hand:\n"
            f"  {url}\nand put it at:\n  {target}\n(the Keras cache; set KERAS_HOME to move it)."
        ) from error


def _md5_matches(path: Path, expected: str) -> bool:
    import hashlib

    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest() == expected


# ------------------------------------------------------------------ reading weight files


def _leaf_layers(model):
    for layer in model.layers:
        if getattr(layer, "layers", None):
            yield from _leaf_layers(layer)
        else:
            yield layer


def _is_head(name: str) -> bool:
    return name in _HEAD_NAMES or name.startswith("head_")


def _read_legacy_h5(path: Path) -> dict[str, list[np.ndarray]]:
    """Weights by layer name from a Keras 2 / keras.applications HDF5 file."""
    import h5py

    with h5py.File(path, "r") as handle:
        group = handle["model_weights"] if "model_weights" in handle else handle
        weights = {}
        for raw in group.attrs["layer_names"]:
            name = raw.decode("utf8") if isinstance(raw, bytes) else str(raw)
            layer_group = group[name]
            names = [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in layer_group.attrs["weight_names"]]
            if names:
                weights[name] = _canonical_order(names, [np.asarray(layer_group[n]) for n in names])
        return weights


_VARIABLE_ORDER = ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance")


def _canonical_order(names: list[str], arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Arrays in ``layer.get_weights()`` order, using the file's weight names when known."""
    short = [re.sub(r":\d+$", "", n).split("/")[-1] for n in names]
    if len(set(short)) == len(short) and all(n in _VARIABLE_ORDER for n in short):
        return [a for _, a in sorted(zip(short, arrays), key=lambda pair: _VARIABLE_ORDER.index(pair[0]))]
    return arrays


def _is_legacy_h5(path: Path) -> bool:
    import h5py

    with h5py.File(path, "r") as handle:
        group = handle["model_weights"] if "model_weights" in handle else handle
        return "layer_names" in group.attrs


def _saving_keys(model) -> dict[str, str]:
    """Keras 3 ``.weights.h5`` key (``layers/conv2d_3``) of each layer name, as saving_lib makes them."""
    from keras.src.utils import naming

    used: dict[str, int] = {}
    keys = {}
    for layer in model.layers:
        base = naming.to_snake_case(layer.__class__.__name__)
        if base in used:
            used[base] += 1
            key = f"{base}_{used[base]}"
        else:
            used[base] = 0
            key = base
        keys[layer.name] = f"layers/{key}"
    return keys


def _read_keras3_weights(path: Path, model) -> dict[str, list[np.ndarray]]:
    """Weights of a Keras 3 ``.weights.h5`` file, keyed by ``model``'s layer names.

    The file stores layers by class-and-order keys (``conv2d_3``); they are mapped to
    ``model``'s layers in the same order. The head's Dense layers are only mapped
    when the file has as many Dense layers as the model (same head structure).
    """
    import h5py

    weights = {}
    with h5py.File(path, "r") as handle:
        if "layers" not in handle:
            raise ValueError(
                f"{path} is not a Keras weights file (no 'layers' group). Expected a file written by "
                "model.save_weights(), a .keras model, a run directory or a keras.applications .h5 file."
            )
        file_dense = sum(1 for key in handle["layers"] if key == "dense" or key.startswith("dense_"))
        model_dense = sum(1 for layer in model.layers if layer.__class__.__name__ == "Dense")
        for name, key in _saving_keys(model).items():
            if _is_head(name) and file_dense != model_dense:
                continue
            vars_key = f"{key}/vars"
            if vars_key in handle and len(handle[vars_key]):
                group = handle[vars_key]
                weights[name] = [np.asarray(group[str(i)]) for i in range(len(group))]
    return weights


def _read_keras_model(path: Path) -> dict[str, list[np.ndarray]]:
    import keras

    source = keras.saving.load_model(path, compile=False)
    return {layer.name: layer.get_weights() for layer in _leaf_layers(source) if layer.weights}


def read_weights(path: str | os.PathLike, model=None) -> dict[str, list[np.ndarray]]:
    """Read a weights source into ``{layer name: [arrays in layer.get_weights() order]}``.

    Args:
        path: A run directory, a ``.keras`` file, a ``.weights.h5`` file (needs
            ``model``: the file stores no layer names) or a legacy ``.h5`` file.
        model: The model the weights are meant for.

    Returns:
        The weights by layer name.

    Raises:
        FileNotFoundError: if ``path`` (or the run's ``model.keras``) does not exist.
        ValueError: for an unsupported file type.
    """
    from keras_resnet.runs import MODEL_FILE

    path = Path(path)
    if path.is_dir():
        if not (path / MODEL_FILE).is_file():
            raise FileNotFoundError(f"Run directory {path} has no {MODEL_FILE}; expected a finished or checkpointed run.")
        path = path / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"No weights file or run directory at {path}. Expected 'imagenet', a .keras / .weights.h5 / .h5 file "
            "or a run directory."
        )
    if path.suffix == ".keras":
        return _read_keras_model(path)
    if path.suffix in (".h5", ".hdf5"):
        if _is_legacy_h5(path):
            return _read_legacy_h5(path)
        if model is None:
            raise ValueError(f"Reading {path} (a Keras 3 weights file, no layer names) needs the target model.")
        return _read_keras3_weights(path, model)
    raise ValueError(
        f"Unsupported weights file {path}. Expected a .keras, .weights.h5 or .h5 file, or a run directory."
    )


# ------------------------------------------------------------------------- assignment


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
    for layer in _leaf_layers(model):
        if not layer.weights:
            continue
        model_names.add(layer.name)
        if skip_head and _is_head(layer.name) and layer.name in weights:
            report.skipped.append((layer.name, "skip_head=True: the new head keeps its initial values"))
            continue
        if layer.name not in weights:
            report.missing.append(layer.name)
            if not _is_head(layer.name):
                errors.append(f"{layer.name}: missing from the file")
            continue
        arrays = weights[layer.name]
        want = [tuple(v.shape) for v in layer.weights]
        have = [tuple(np.shape(a)) for a in arrays]
        if want != have:
            reason = f"shapes {have} in file, {want} in model"
            if _is_head(layer.name):
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
            f"(pass allow_partial=True to load the rest):\n  {shown}"
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
    """``model.save_weights(path)`` atomically (a failed write keeps the old file).

    Args:
        model: The model.
        path: Destination ending in ``.weights.h5``.

    Returns:
        ``path`` as a ``Path``.
    """
    from keras_resnet.runs import atomic_path

    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"Weights files must end in '.weights.h5'. Received: path={str(path)!r}")
    with atomic_path(path, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
    return path


# ---------------------------------------------------------------------- conversion


def read_torch_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a torchvision/timm state dict as numpy arrays.

    ``.safetensors`` needs only the safetensors package; ``.pth``/``.pt``/``.bin``
    need torch. A checkpoint wrapping its state dict in ``state_dict``/``model`` and
    keys prefixed ``module.`` (DataParallel) are handled.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unsupported extension, or torch missing for a ``.pth`` file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint file at {path}.")
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        state = load_file(str(path))
    elif path.suffix in (".pth", ".pt", ".bin"):
        try:
            import torch
        except ImportError as error:
            raise ValueError(
                f"Reading {path} needs PyTorch, which is not installed. Install torch, or use the "
                "model's .safetensors file (e.g. timm's 'resnet18.tv_in1k' on the Hugging Face Hub)."
            ) from error
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
        for key in ("state_dict", "model"):
            if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
                loaded = loaded[key]
        state = {k: v.detach().cpu().numpy() for k, v in loaded.items() if hasattr(v, "detach")}
    else:
        raise ValueError(f"Unsupported checkpoint {path}. Expected a .safetensors or .pth file.")
    return {re.sub(r"^(module\.)", "", k): np.asarray(v) for k, v in state.items()}


_BLOCK_KEY = re.compile(r"^layer(\d)\.(\d+)\.(conv\d|bn\d|downsample\.[01])\.(\w+)$")
_STEM_KEY = re.compile(r"^(conv1|bn1|fc)\.(\w+)$")


def _keras_layer_name(key: str) -> tuple[str, str] | None:
    """``(keras layer name, torch parameter name)`` of a torchvision key, or None."""
    match = _STEM_KEY.match(key)
    if match:
        return {"conv1": "conv1_conv", "bn1": "conv1_bn", "fc": "predictions"}[match.group(1)], match.group(2)
    match = _BLOCK_KEY.match(key)
    if not match:
        return None
    stage, block, part, param = int(match.group(1)), int(match.group(2)), match.group(3), match.group(4)
    prefix = f"conv{stage + 1}_block{block + 1}"
    if part.startswith("downsample"):
        suffix = "0_conv" if part.endswith("0") else "0_bn"
    else:
        suffix = f"{part[-1]}_{part[:-1]}"
    return f"{prefix}_{suffix}", param


def convert_torch_state_dict(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Map a torchvision/timm ResNet-18/34 state dict to ``{keras layer name: arrays}``.

    Convolution kernels go from (O, I, kh, kw) to (kh, kw, I, O), the fc kernel is
    transposed, BatchNorm ``weight, bias, running_mean, running_var`` become
    ``gamma, beta, moving_mean, moving_variance``; ``num_batches_tracked`` is dropped.

    Raises:
        ValueError: keys that are not a torchvision basic-block ResNet's (listed).
    """
    layers: dict[str, dict[str, np.ndarray]] = {}
    unknown = []
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        mapped = _keras_layer_name(key)
        if mapped is None:
            unknown.append(key)
            continue
        layers.setdefault(mapped[0], {})[mapped[1]] = np.asarray(value, dtype=np.float32)
    if unknown:
        raise ValueError(
            f"{len(unknown)} checkpoint keys are not those of a torchvision/timm ResNet-18/34: "
            f"{', '.join(unknown[:8])}. Expected keys like conv1.weight, layer1.0.bn1.running_mean, fc.bias."
        )
    converted = {}
    for name, params in layers.items():
        if name.endswith("_conv"):
            converted[name] = [np.transpose(params["weight"], (2, 3, 1, 0))]
        elif name.endswith("_bn"):
            missing = [p for p in _BN_TORCH_TO_KERAS if p not in params]
            if missing:
                raise ValueError(f"BatchNorm {name} lacks {missing} in the checkpoint.")
            converted[name] = [params[p] for p in _BN_TORCH_TO_KERAS]
        else:  # predictions
            converted[name] = [np.transpose(params["weight"]), params["bias"]]
    return converted


def convert_weights(name: str, checkpoint: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    """Convert a torchvision/timm ResNet-18/34 checkpoint into a kresnet weights file.

    Builds the model (1000 classes, or the checkpoint's fc size), loads the
    converted arrays with every shape checked and saves ``output`` atomically.

    Args:
        name: ``"resnet18"`` or ``"resnet34"``.
        checkpoint: A ``.safetensors`` or ``.pth`` file.
        output: Destination ``.weights.h5``; default `converted_weights_path(name)`,
            where ``build_resnet(name, weights="imagenet")`` looks.

    Returns:
        The written path.

    Raises:
        ValueError: an unsupported model, or a checkpoint that does not fit it.

    Example:
        >>> convert_weights("resnet18", "model.safetensors")
        PosixPath('/root/.keras/models/kresnet/resnet18_imagenet.weights.h5')
    """
    if name not in CONVERTIBLE_MODELS:
        raise ValueError(f"Conversion supports {', '.join(CONVERTIBLE_MODELS)}. Received: name={name!r}")
    from keras_resnet.models.resnet import build_resnet

    converted = convert_torch_state_dict(read_torch_checkpoint(checkpoint))
    num_classes = converted["predictions"][1].shape[0] if "predictions" in converted else 1000
    model = build_resnet(name, num_classes=num_classes, include_top="predictions" in converted)
    report = assign_by_name(model, converted, str(checkpoint))
    if report.missing or report.skipped or report.unused:
        raise ValueError(f"Checkpoint {checkpoint} does not fit {name} exactly:\n{report.summary()}")
    return save_weights(model, output if output is not None else converted_weights_path(get_spec(name).name))
