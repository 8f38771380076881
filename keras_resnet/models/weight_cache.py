"""ImageNet weight files: where they live in Keras' cache, where they come from, their hashes.

* ResNet-50/101/152 and their v2: keras.applications' official files (same names,
  md5 hashes and URL as ``keras.applications.resnet``), fetched with
  ``keras.utils.get_file`` into ``$KERAS_HOME/models`` (default ``~/.keras/models``).
* ResNet-18/34: torchvision's IMAGENET1K_V1 checkpoints (``resnet18-f37072fd.pth``,
  ``resnet34-b627a593.pth``), fetched the same way, checked by torchvision's rule
  (the hex digits after the last ``-`` of the file name start the file's SHA-256),
  converted once (`keras_resnet.models.torch_convert`) and kept as
  ``$KERAS_HOME/models/kresnet/{name}_imagenet.weights.h5``; later calls read that
  file and touch no network. The ``.pth`` stays in ``$KERAS_HOME/models``.
  The download base URL is ``$KRESNET_TORCHVISION_URL`` when set (a mirror, or a
  local server in tests), else ``https://download.pytorch.org/models/``.

Offline, `PretrainedWeightsUnavailable` names the URL, the path to put the file at,
and (ResNet-18/34) ``kresnet convert-weights`` as the alternative. A file whose hash
does not match is deleted and refused (`WeightsHashMismatch`).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from keras_resnet.models.specs import CIFAR_STEM, ResNetSpec

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
#: torchvision's download location (overridden by ``$KRESNET_TORCHVISION_URL``) and its
#: IMAGENET1K_V1 checkpoints of the models we convert.
TORCHVISION_URL = "https://download.pytorch.org/models/"
TORCHVISION_URL_ENV = "KRESNET_TORCHVISION_URL"
TORCHVISION_FILES = {"resnet18": "resnet18-f37072fd.pth", "resnet34": "resnet34-b627a593.pth"}
#: Models whose ImageNet weights come from a converted torchvision/timm checkpoint.
CONVERTIBLE_MODELS = tuple(TORCHVISION_FILES)
IMAGENET_MODELS = tuple(KERAS_APPLICATIONS_NAMES) + CONVERTIBLE_MODELS


class PretrainedWeightsUnavailable(FileNotFoundError):
    """Pretrained weights are neither in the cache nor downloadable (e.g. offline).

    The message names what to fetch (a URL, or the convert-weights command) and
    the exact path to put the file at.
    """


class WeightsHashMismatch(PretrainedWeightsUnavailable):
    """A downloaded or cached weights file has the wrong hash; it was deleted (or must be)."""


# ------------------------------------------------------------------------ cache paths


def keras_cache_dir() -> Path:
    """Keras' cache root: ``$KERAS_HOME``, else ``~/.keras`` (``/tmp/.keras`` if not writable).

    Read at call time, so setting ``KERAS_HOME`` after import takes effect.

    Returns:
        The directory (which may not exist yet).
    """
    if os.environ.get("KERAS_HOME"):
        return Path(os.environ["KERAS_HOME"])
    home = os.path.expanduser("~")
    return Path(home if os.access(home, os.W_OK) else "/tmp") / ".keras"


def converted_weights_path(name: str) -> Path:
    """Where ``imagenet`` weights of a converted model (ResNet-18/34) are kept.

    Args:
        name: ``"resnet18"`` or ``"resnet34"``.

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


def torchvision_base_url() -> str:
    """torchvision's download base URL: ``$KRESNET_TORCHVISION_URL`` if set, else `TORCHVISION_URL`.

    Read at call time. A mirror (or a local test server) must serve the same file names.

    Returns:
        The base URL, ending in ``/``.
    """
    base = os.environ.get(TORCHVISION_URL_ENV) or TORCHVISION_URL
    return base if base.endswith("/") else base + "/"


def sha256_prefix(file_name: str) -> str:
    """The SHA-256 prefix a torchvision/torch.hub file name carries (``resnet18-f37072fd.pth``).

    Args:
        file_name: A file name ``<name>-<hex>.<ext>``.

    Returns:
        The hex digits after the last ``-`` (``"f37072fd"``).

    Raises:
        ValueError: the name carries no hash of at least 8 hex digits.
    """
    match = re.fullmatch(r".*-([0-9a-f]{8,64})\.[A-Za-z0-9]+", file_name)
    if not match:
        raise ValueError(
            f"File name {file_name!r} carries no SHA-256 prefix. Expected '<name>-<8+ hex digits>.<ext>', "
            "like 'resnet18-f37072fd.pth'."
        )
    return match.group(1)


def torchvision_file(name: str) -> tuple[str, str, str]:
    """File name, URL and SHA-256 prefix of torchvision's IMAGENET1K_V1 checkpoint of ``name``.

    Args:
        name: ``"resnet18"`` or ``"resnet34"``.

    Returns:
        ``(file_name, url, sha256_prefix)``.

    Raises:
        ValueError: a model without a torchvision checkpoint here.
    """
    if name not in TORCHVISION_FILES:
        raise ValueError(f"No torchvision checkpoint for {name!r}. Expected one of {CONVERTIBLE_MODELS}.")
    file_name = TORCHVISION_FILES[name]
    return file_name, torchvision_base_url() + file_name, sha256_prefix(file_name)


# ------------------------------------------------------------------------- hashes


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks.

    Args:
        path: The file.
        algorithm: A ``hashlib`` name (``"sha256"``, ``"md5"``).

    Returns:
        The hex digest.
    """
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _md5_matches(path: Path, expected: str) -> bool:
    return file_digest(path, "md5") == expected


# ----------------------------------------------------------------------- downloads


def _download(file_name: str, url: str, file_hash: str | None, cache_dir: Path) -> str:
    """``keras.utils.get_file`` into ``cache_dir/models`` (the one network seam; tests replace it)."""
    import keras

    # get_file falls back to /tmp/.keras when cache_dir does not exist yet (it checks that
    # it is writable), which would put the file away from where the cache is looked up.
    (Path(cache_dir) / "models").mkdir(parents=True, exist_ok=True)
    return keras.utils.get_file(file_name, url, cache_subdir="models", file_hash=file_hash, cache_dir=str(cache_dir))


def _verify_sha256_prefix(path: Path, prefix: str, url: str) -> None:
    """Delete ``path`` and raise `WeightsHashMismatch` unless its SHA-256 starts with ``prefix``."""
    actual = file_digest(path, "sha256")
    if not actual.startswith(prefix):
        path.unlink(missing_ok=True)
        raise WeightsHashMismatch(
            f"Refusing {path}: its SHA-256 is {actual}, expected one starting with {prefix} (the prefix in the "
            f"file name). The file is corrupt, truncated or not the published one, and was deleted. Download "
            f"it again from {url}."
        )


def torchvision_checkpoint(name: str) -> Path:
    """Find (or download) torchvision's ImageNet checkpoint of ``name``, hash checked.

    A cached copy with the wrong hash is deleted and fetched again; a download with
    the wrong hash is deleted and refused.

    Args:
        name: ``"resnet18"`` or ``"resnet34"``.

    Returns:
        The path of the verified ``.pth`` in ``$KERAS_HOME/models``.

    Raises:
        PretrainedWeightsUnavailable: not cached and not downloadable; names the URL,
            the cache path and ``kresnet convert-weights``.
        WeightsHashMismatch: the downloaded file's SHA-256 does not start with the
            prefix in its name (the file was deleted).
    """
    file_name, url, prefix = torchvision_file(name)
    cache = keras_cache_dir()
    target = cache / "models" / file_name
    if target.is_file() and not file_digest(target).startswith(prefix):
        print(f"Cached {target} does not match SHA-256 prefix {prefix}; deleting it and downloading again.")
        target.unlink()
    try:
        path = Path(_download(file_name, url, None, cache))
    except Exception as error:  # get_file raises a bare Exception for URL errors
        converted = converted_weights_path(name)
        raise PretrainedWeightsUnavailable(
            f"ImageNet weights for {name} are not cached and could not be downloaded ({error}).\n"
            f"Either fetch torchvision's checkpoint by hand:\n  {url}\nand put it at:\n  {target}\n"
            f"or convert any torchvision/timm {name} checkpoint (.pth or .safetensors) you have:\n"
            f"  kresnet convert-weights {name} CHECKPOINT -o {converted}\n"
            f"(the Keras cache; set KERAS_HOME to move it, {TORCHVISION_URL_ENV} to use a mirror)."
        ) from error
    _verify_sha256_prefix(path, prefix, url)
    return path


def keras_applications_weights(name: str, include_top: bool) -> Path:
    """Find (or download) keras.applications' ImageNet weights of ``name``, md5 checked.

    Args:
        name: ``"resnet50"`` .. ``"resnet152_v2"``.
        include_top: The file with the 1000-class head, or ``_notop``.

    Returns:
        The local path.

    Raises:
        PretrainedWeightsUnavailable: a cached file with the wrong md5, or not
            downloadable; names the URL and the cache path.
    """
    cache = keras_cache_dir()
    file_name, url, file_hash = keras_applications_file(name, include_top)
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
            f"Could not download ImageNet weights for {name} ({error}). Fetch the file by hand:\n"
            f"  {url}\nand put it at:\n  {target}\n(the Keras cache; set KERAS_HOME to move it)."
        ) from error


def imagenet_weights_file(spec: ResNetSpec, include_top: bool = True) -> Path:
    """Find (or fetch, and for ResNet-18/34 convert) the ImageNet weights file of a model.

    Args:
        spec: The model's spec.
        include_top: Whether the 1000-class head is wanted (keras.applications
            models come as a top and a ``_notop`` file; converted files always
            have the head).

    Returns:
        The local path: a keras.applications ``.h5``, or for ResNet-18/34 the
        converted ``.weights.h5`` (converted from torchvision's checkpoint on the
        first call, read from the cache with no network afterwards).

    Raises:
        ValueError: the model has no ImageNet weights (lists those that do).
        PretrainedWeightsUnavailable: not cached and not downloadable; the message
            names the URL, the cache path (and the convert command for ResNet-18/34).
        WeightsHashMismatch: a download with the wrong hash (deleted).
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
        checkpoint = torchvision_checkpoint(spec.name)
        # Conversion builds a model, so it lives in torch_convert (imported here, not at the top,
        # because torch_convert itself depends on this module).
        from keras_resnet.models.torch_convert import convert_weights

        convert_weights(spec.name, checkpoint, path)
        print(f"Converted {checkpoint} to {path} (later calls read it from there).")
        return path
    return keras_applications_weights(spec.name, include_top)
