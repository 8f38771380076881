"""Resuming a run with the config it was started with: compare, refuse what breaks it, say what changed.

A run directory keeps its resolved ``config.yaml``. Running ``kresnet train`` again
with the same ``run_dir`` continues that run, so the new config must describe the same
run: another model, batch size, schedule, optimizer, data or seed would load the
backup into a different network, or run the rest of a learning-rate schedule
computed for other numbers. `check_resume_config` compares the two before anything
is overwritten and refuses such a change, naming the keys; keys that only change
what is printed or logged (`HARMLESS_KEYS`) are allowed, and said.
"""

from __future__ import annotations

from pathlib import Path

from keras_resnet import runs

#: Dotted config keys a resumed run may change: they change what is shown, logged or
#: cached, or where the same data is found, never what is trained.
HARMLESS_KEYS = (
    "run_dir",
    "training.progress",
    "training.tensorboard",
    "training.evaluate_split",
    "training.tta",
    "training.fused_batchnorm",  # the same BatchNorm arithmetic on another kernel (rounding differs)
    "data.cache",
    "data.cache_dir",
    "data.download",
    "data.tfds_data_dir",
)


class ResumeConfigError(ValueError):
    """A run directory was asked to resume with a config that changes the run."""


def flat_config(config) -> dict:
    """``{"dotted.key": value}`` of a `TrainConfig` (lists for tuples).

    Example:
        >>> flat_config(TrainConfig())["training.epochs"]
        30
    """
    from keras_resnet.config import config_to_dict

    def walk(data: dict, prefix: str):
        for key, value in data.items():
            if isinstance(value, dict):
                yield from walk(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    return dict(walk(config_to_dict(config), ""))


def config_changes(old, new) -> dict[str, tuple]:
    """``{"dotted.key": (old value, new value)}`` for every key that differs (``run_dir`` ignored)."""
    import dataclasses

    before = flat_config(dataclasses.replace(old, run_dir=None))
    after = flat_config(dataclasses.replace(new, run_dir=None))
    return {key: (before.get(key), after.get(key)) for key in sorted(set(before) | set(after))
            if before.get(key) != after.get(key)}


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def describe_changes(changes: dict[str, tuple]) -> str:
    """``key (old -> new), ...`` for a message."""
    return ", ".join(f"{key} ({_shown(a)} -> {_shown(b)})" for key, (a, b) in changes.items())


def has_progress(run_dir: Path, backup_folder: str = "backup") -> bool:
    """Whether ``run_dir`` holds trained epochs: a backup, a history row or a checkpoint."""
    run_dir = Path(run_dir)
    if any((run_dir / backup_folder).glob("*/training_metadata.json")):
        return True
    if (run_dir / runs.MODEL_FILE).is_file():
        return True
    history = run_dir / runs.HISTORY_FILE
    try:
        return history.is_file() and len(history.read_text(encoding="utf-8").strip().splitlines()) > 1
    except (OSError, UnicodeDecodeError):
        return True


def check_resume_config(run_dir, config, log=print, backup_folder: str = "backup") -> dict[str, tuple]:
    """Compare ``config`` with the run's ``config.yaml`` before resuming ``run_dir``.

    Nothing is checked when the run has no trained epoch yet (`has_progress`): the
    run then simply starts again with the new config.

    Args:
        run_dir: The run directory about to be resumed.
        config: The new, resolved `TrainConfig` (image size filled in, as it is saved).
        log: Where the note on harmless changes goes.
        backup_folder: Name of the run's backup folder.

    Returns:
        The harmless changes (``{}`` when there are none or nothing to compare).

    Raises:
        ResumeConfigError: a key outside `HARMLESS_KEYS` differs; the message names
            each key with its old and new value.
        ValueError: the run's ``config.yaml`` cannot be read.
    """
    from keras_resnet.config import load_config

    run_dir = Path(run_dir)
    saved = run_dir / runs.CONFIG_FILE
    if not has_progress(run_dir, backup_folder):
        return {}
    if not saved.is_file():
        log(f"Note: {run_dir} has no {runs.CONFIG_FILE}; the resumed run's config cannot be checked against it.")
        return {}
    try:
        old = load_config(saved)
    except (ValueError, OSError) as error:
        raise ValueError(f"Cannot resume {run_dir}: its {runs.CONFIG_FILE} does not load ({error}).") from None
    changes = config_changes(old, config)
    breaking = {k: v for k, v in changes.items() if k not in HARMLESS_KEYS}
    harmless = {k: v for k, v in changes.items() if k in HARMLESS_KEYS}
    if breaking:
        raise ResumeConfigError(
            f"Cannot resume {run_dir} with a different config: {describe_changes(breaking)} "
            f"differ{'s' if len(breaking) == 1 else ''} from its {runs.CONFIG_FILE} and would change the run. "
            "Run the same command without these changes to resume, or choose a new --run-dir for a new run."
        )
    if harmless:
        log(f"Resuming {run_dir} with harmless config changes: {describe_changes(harmless)}.")
    return harmless
