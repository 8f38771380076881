"""Weight file readers: everything becomes ``{layer or key name: numpy arrays}``.

* `read_weights`: a run directory (its ``model.keras``), a ``.keras`` model, a Keras 3
  ``.weights.h5`` (stores no layer names: matched to the target model's layers by
  class-and-order keys, as ``saving_lib`` writes them) or a legacy Keras 2 /
  keras.applications ``.h5`` (layer names inside) -> ``{layer name: [arrays in
  layer.get_weights() order]}``.
* `read_torch_checkpoint`: a torchvision/timm state dict (``.safetensors``, or a
  ``.pth`` through torch when it is installed and through the torch-free restricted
  reader `keras_resnet.models.torch_checkpoint.read_pth` when it is not) ->
  ``{torch key: array}``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from keras_resnet.compat import weights_file_keys
from keras_resnet.models.naming import is_head_layer, leaf_layers

_VARIABLE_ORDER = ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance")


# --------------------------------------------------------------------- Keras files


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
        for name, key in weights_file_keys(model).items():
            if is_head_layer(name) and file_dense != model_dense:
                continue
            vars_key = f"{key}/vars"
            if vars_key in handle and len(handle[vars_key]):
                group = handle[vars_key]
                weights[name] = [np.asarray(group[str(i)]) for i in range(len(group))]
    return weights


def _read_keras_model(path: Path) -> dict[str, list[np.ndarray]]:
    from keras_resnet.runs import load_keras_model

    source = load_keras_model(path)
    return {layer.name: layer.get_weights() for layer in leaf_layers(source) if layer.weights}


def _unreadable(path: Path, kind: str, error: BaseException, expected: str) -> ValueError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return ValueError(f"{path} is not a valid {kind} (truncated or corrupt?): {reason}. Expected {expected}.")


def _read_h5(path: Path, model) -> dict[str, list[np.ndarray]]:
    """An HDF5 weights file of either kind; a file HDF5 cannot read raises a ValueError naming it."""
    expected = "a file written by model.save_weights() (.weights.h5) or a keras.applications .h5 file"
    try:
        legacy = _is_legacy_h5(path)
    except OSError as error:
        if isinstance(getattr(error, "errno", None), int) and error.errno > 0:
            raise OSError(error.errno, os.strerror(error.errno), str(path)) from None  # permissions, ...
        raise _unreadable(path, "HDF5 weights file", error, expected) from None
    if not legacy and model is None:
        raise ValueError(f"Reading {path} (a Keras 3 weights file, no layer names) needs the target model.")
    try:
        return _read_legacy_h5(path) if legacy else _read_keras3_weights(path, model)
    except (KeyError, OSError, TypeError, AttributeError) as error:  # a damaged group or attribute inside
        raise _unreadable(path, "HDF5 weights file", error, expected) from None


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
        return _read_h5(path, model)
    raise ValueError(
        f"Unsupported weights file {path}. Expected a .keras, .weights.h5 or .h5 file, or a run directory."
    )


# --------------------------------------------------------------------- torch files


def _torch_state(path: Path) -> dict | None:
    """The checkpoint through ``torch.load(weights_only=True)``, or None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    return {k: (v.detach().float() if v.dtype == torch.bfloat16 else v.detach()).cpu().numpy()
            for k, v in loaded.items() if hasattr(v, "detach")}


def read_torch_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a torchvision/timm state dict as numpy arrays.

    ``.safetensors`` needs only the safetensors package. ``.pth``/``.pt``/``.bin``
    go through ``torch.load(weights_only=True)`` when torch is installed, else
    through `keras_resnet.models.torch_checkpoint.read_pth`, a restricted unpickler
    that rebuilds tensors with numpy and refuses any other global (zip-format files,
    i.e. torch >= 1.6; torchvision's current checkpoints are). A checkpoint wrapping
    its state dict in ``state_dict``/``model`` and keys prefixed ``module.``
    (DataParallel) are handled.

    Args:
        path: The checkpoint file.

    Returns:
        ``{torch key: np.ndarray}`` in the file's order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unsupported extension, a file that is not a tensor checkpoint,
            or (`~keras_resnet.models.torch_checkpoint.UnsafeCheckpointError`) a
            pickle naming a global other than tensor rebuilding.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint file at {path}.")
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        try:
            state = load_file(str(path))
        except OSError:
            raise
        except Exception as error:  # safetensors' SafetensorError (a header it cannot parse), ...
            raise _unreadable(path, "safetensors file", error, "a .safetensors state dict (torchvision/timm)") from None
    elif path.suffix in (".pth", ".pt", ".bin"):
        try:
            state = _torch_state(path)
            if state is None:
                from keras_resnet.models.torch_checkpoint import read_pth, state_dict_arrays

                state = state_dict_arrays(read_pth(path), str(path))
        except (ValueError, OSError):
            raise  # UnsafeCheckpointError and our own messages name the file already
        except Exception as error:  # zip / pickle errors of a damaged file, torch's RuntimeError
            raise _unreadable(path, "PyTorch checkpoint", error, "a torch.save() state dict (.pth)") from None
    else:
        raise ValueError(f"Unsupported checkpoint {path}. Expected a .safetensors or .pth/.pt/.bin file.")
    return {re.sub(r"^(module\.)", "", k): np.asarray(v) for k, v in state.items()}
