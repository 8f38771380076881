"""What a run directory records besides the model: config, versions, dataset, labels, preprocessing."""

from __future__ import annotations

import datetime
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from keras_resnet import runs

VERSIONS_FILE = "versions.json"
DATASET_FILE = "dataset.json"
PACKAGES = ("kresnet", "tensorflow", "keras", "tensorflow-datasets", "numpy", "pyyaml", "pillow", "matplotlib")


def default_run_dir(model_name: str, dataset: str | None, root: str | Path = runs.DEFAULT_RUNS_ROOT) -> Path:
    """``saved_models/<model>-<dataset>-<YYYYmmdd-HHMMSS>``.

    Example:
        >>> default_run_dir("resnet20", "cifar10").name  # doctest: +SKIP
        'resnet20-cifar10-20250101-120000'
    """
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    dataset_name = Path(str(dataset or "data")).name or "data"
    return Path(root) / f"{model_name}-{dataset_name}-{stamp}"


def package_versions() -> dict:
    """Versions of Python, the platform and the packages a run depends on."""
    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def dataset_record(datasets) -> dict:
    """The dataset fingerprint of a ``Datasets``: class names, split sizes, class counts."""
    return {
        "class_names": list(datasets.class_names),
        "image_size": list(datasets.image_size),
        "split_sizes": dict(datasets.split_sizes),
        "class_counts": dict(getattr(datasets, "class_counts", {}) or {}),
        "fingerprint": dict(getattr(datasets, "fingerprint", {}) or {}),
    }


def write_run_records(run_dir: Path, config, datasets, precision=None, onednn: dict | None = None) -> None:
    """Write ``config.yaml``, ``versions.json``, ``dataset.json``, ``labels.txt``, ``preprocessing.json``.

    ``config.yaml`` is the resolved config with ``run_dir: null``, so
    ``kresnet train --config RUN/config.yaml`` repeats the run in a new directory
    (``training.precision: auto`` stays ``auto``; the policy it chose is in
    ``versions.json``, beside the machine it was chosen on, as is whether TensorFlow ran
    its oneDNN CPU kernels: `keras_resnet.cpu_kernels.onednn_record`).

    Args:
        run_dir: The run directory.
        config: The resolved `TrainConfig`.
        datasets: The ``Datasets`` the run trains on.
        precision: The `keras_resnet.train.precision.PrecisionChoice` in use (None:
            not recorded).
        onednn: `keras_resnet.cpu_kernels.onednn_record` of this process (None: not
            recorded).
    """
    import dataclasses

    from keras_resnet.data.preprocess import save_preprocessing
    from keras_resnet.train.config import save_config

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(dataclasses.replace(config, run_dir=None), run_dir / runs.CONFIG_FILE)
    versions = package_versions()
    if onednn is not None:
        versions["onednn"] = onednn
    if precision is not None:
        versions["precision"] = {"policy": precision.policy, "reason": precision.reason}
    runs.atomic_write_json(run_dir / VERSIONS_FILE, versions)
    runs.atomic_write_json(run_dir / DATASET_FILE, dataset_record(datasets))
    runs.write_labels(run_dir, datasets.class_names)
    save_preprocessing(run_dir, datasets.preprocessing)
