"""Transfer benchmark: does a pretrained ResNet-20 help on a small new task?

1. Pretrain ResNet-20 on the CIFAR-10 classes airplane, automobile, bird, cat, deer
   (all 25,000 training images, ``--pretrain-epochs`` 30). With ``--work-dir`` the pretrained model is kept
   there and reused by later runs.
2. New task: dog, frog, horse, ship, truck with only ``--shots`` (100) labelled
   training images per class, plus a disjoint validation set of ``--val-per-class``
   (50) images per class, both drawn (seeded) from the CIFAR-10 *train* split.
   With the same epoch budget, every method trains each configuration of its own
   small grid, and the configuration with the best validation accuracy is
   selected (ties: lower validation loss). Test images never take part in a choice.
   * ``head_only``: pretrained backbone frozen, a new 5-class head; grid: head LR.
   * ``two_phase``: the new head first (higher LR), then the whole backbone
     unfrozen at a lower LR (`FinetuneConfig(head_epochs=..., unfreeze="none")`),
     BatchNorm statistics re-estimated (``train_batchnorm=True``); grid: phase-2
     backbone LR multiplier.
   * ``two_phase_frozen_bn``: the same with the library default for pretrained
     weights, BatchNorm frozen; grid: smaller backbone multipliers (frozen
     BatchNorm needs them).
   * ``scratch``: the same ResNet-20 from random initialisation; grid: LR.
   The selected configuration of each method is reported with its accuracy on the
   five classes' full test split (5,000 images); every configuration's validation
   and test accuracy is printed too.
3. Step 2 is repeated for each of ``--seeds`` (0, 1, 2): its own few-shot sample,
   initialisation and shuffling; single runs vary by about a point. The headline
   figure is two_phase minus scratch, averaged over the seeds.

Uses the library end to end: `build_resnet`, `load_pretrained(skip_head=True)`,
`plan_phases`, `freeze`, `parameter_table`, and the trainer's `compile_model`
(optimizer, schedule, per-stage learning rates).

Usage:
    python benchmarks/transfer.py --data-dir ../shared/datasets/cifar10 --work-dir /tmp/transfer \\
        --json /tmp/transfer/results.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

SOURCE_CLASSES = ("airplane", "automobile", "bird", "cat", "deer")
TARGET_CLASSES = ("dog", "frog", "horse", "ship", "truck")
METHODS = ("head_only", "two_phase", "two_phase_frozen_bn", "scratch")
FINETUNE_BATCH = 50
PRETRAIN_BATCH = 128


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One configuration of one method's grid.

    Attributes:
        method: One of `METHODS`.
        label: Short human-readable name of the configuration (e.g. ``"LR 0.2"``).
        params: The hyperparameters that vary in the grid (for the JSON output).
        config: The `TrainConfig` to train with; ``config.model.weights`` set means
            the model starts from the pretrained backbone.
    """

    method: str
    label: str
    params: dict
    config: object


def _image_files(root: Path, split: str, name: str) -> list[Path]:
    files = sorted((root / split / name).glob("*.jpg"))
    if not files:
        raise FileNotFoundError(f"No JPEG images in {root / split / name}. Expected the CIFAR-10 image folder.")
    return files


def _read_images(files) -> np.ndarray:
    from PIL import Image

    images = []
    for path in files:
        with Image.open(path) as image:
            images.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
    return np.stack(images)


def load_split(root: Path, split: str, classes):
    """Every image of ``classes`` in ``root/split/<class>/*.jpg``.

    Args:
        root: The CIFAR-10 image folder (``train/`` and ``test/`` inside).
        split: ``"train"`` or ``"test"``.
        classes: Class folder names; label ``i`` is ``classes[i]``.

    Returns:
        ``(images, labels)``: uint8 ``[N, 32, 32, 3]`` and int64 ``[N]``.
    """
    files, labels = [], []
    for label, name in enumerate(classes):
        class_files = _image_files(root, split, name)
        files += class_files
        labels += [label] * len(class_files)
    return _read_images(files), np.asarray(labels, dtype=np.int64)


def load_few_shot(root: Path, classes, shots: int, val_per_class: int, seed: int = 0):
    """Disjoint labelled-training and validation samples from the train split.

    Per class, ``shots`` training images are drawn first (``default_rng([seed, 0])``),
    then ``val_per_class`` validation images from the remaining ones
    (``default_rng([seed, 1])``), so the training shots do not depend on the
    validation size, and different seeds draw independent samples.

    Args:
        root: The CIFAR-10 image folder.
        classes: Class folder names; label ``i`` is ``classes[i]``.
        shots: Training images per class.
        val_per_class: Validation images per class (disjoint from the shots).
        seed: Sampling seed.

    Returns:
        ``((x_train, y_train), (x_val, y_val))``, uint8 images and int64 labels.

    Raises:
        ValueError: if a class folder has fewer than ``shots + val_per_class`` images.
    """
    shot_rng, val_rng = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
    train_files, val_files, train_labels, val_labels = [], [], [], []
    for label, name in enumerate(classes):
        files = _image_files(root, "train", name)
        if len(files) < shots + val_per_class:
            raise ValueError(
                f"{root / 'train' / name} has {len(files)} images; shots + val_per_class need "
                f"{shots + val_per_class}. Received: shots={shots!r}, val_per_class={val_per_class!r}"
            )
        picked = shot_rng.choice(len(files), shots, replace=False)
        rest = np.setdiff1d(np.arange(len(files)), picked)
        held = val_rng.choice(rest, val_per_class, replace=False)
        train_files += [files[i] for i in sorted(picked)]
        val_files += [files[i] for i in sorted(held)]
        train_labels += [label] * shots
        val_labels += [label] * val_per_class
    return ((_read_images(train_files), np.asarray(train_labels, dtype=np.int64)),
            (_read_images(val_files), np.asarray(val_labels, dtype=np.int64)))


def make_dataset(x, y, mean, std, batch_size: int, train: bool, seed: int):
    """A tf.data pipeline: normalise, one-hot labels; flips and 4-pixel pad-crops when training."""
    import tensorflow as tf

    num_classes = int(y.max()) + 1
    x = ((x.astype("float32") - mean) / std).astype("float32")
    y = np.eye(num_classes, dtype="float32")[y]
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if train:
        def augment(image, label):
            image = tf.image.random_flip_left_right(image)
            image = tf.pad(image, [[4, 4], [4, 4], [0, 0]], mode="REFLECT")
            return tf.image.random_crop(image, [32, 32, 3]), label

        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(batch_size, drop_remainder=True)
    else:
        ds = ds.batch(256)
    return ds.prefetch(tf.data.AUTOTUNE)


def make_config(epochs: int, learning_rate: float, batch_size: int, weights=None, **finetune):
    """A `TrainConfig` for one method (SGD + Nesterov, cosine with a short warmup).

    Args:
        epochs: Total epochs (all phases).
        learning_rate: Peak LR per 256 images (scaled linearly to ``batch_size``).
        batch_size: Global batch size.
        weights: Pretrained model path, or None for random initialisation.
        **finetune: `FinetuneConfig` fields.

    Returns:
        The `TrainConfig`.
    """
    from keras_resnet.train.config import TrainConfig
    from keras_resnet.train.finetune import FinetuneConfig

    config = TrainConfig()
    config.training.epochs = epochs
    config.training.label_smoothing = 0.1
    config.data.batch_size = batch_size
    config.model.weights = weights
    config.optimizer.learning_rate = learning_rate
    config.optimizer.reference_batch_size = 256
    config.optimizer.weight_decay = 5e-3
    config.schedule.name = "cosine"
    config.schedule.warmup_epochs = 1.0
    config.finetune = FinetuneConfig(**finetune)
    return config


def build_grids(args, pretrained_path: Path) -> dict[str, list[Candidate]]:
    """Every method's grid of configurations, all on the same epoch budget.

    Args:
        args: Parsed command line (grids, epochs, LRs).
        pretrained_path: The pretrained model file.

    Returns:
        ``{method: [Candidate, ...]}`` in `METHODS` order.
    """
    epochs, batch, weights = args.finetune_epochs, FINETUNE_BATCH, str(pretrained_path)
    two_phase = dict(head_epochs=args.head_epochs, head_learning_rate=args.two_phase_head_lr, unfreeze="none")
    grids = {
        "head_only": [
            Candidate("head_only", f"head LR {lr:g}", {"learning_rate": lr},
                      make_config(epochs, lr, batch, weights=weights, freeze="head_only"))
            for lr in args.head_lrs
        ],
        "two_phase": [
            Candidate("two_phase", f"backbone x{m:g}",
                      {"learning_rate": args.two_phase_lr, "backbone_lr_multiplier": m, "train_batchnorm": True},
                      make_config(epochs, args.two_phase_lr, batch, weights=weights, backbone_lr_multiplier=m,
                                  train_batchnorm=True, **two_phase))
            for m in args.two_phase_multipliers
        ],
        "two_phase_frozen_bn": [
            Candidate("two_phase_frozen_bn", f"backbone x{m:g}",
                      {"learning_rate": args.two_phase_lr, "backbone_lr_multiplier": m, "train_batchnorm": False},
                      make_config(epochs, args.two_phase_lr, batch, weights=weights, backbone_lr_multiplier=m,
                                  **two_phase))
            for m in args.frozen_bn_multipliers
        ],
        "scratch": [
            Candidate("scratch", f"LR {lr:g}", {"learning_rate": lr}, make_config(epochs, lr, batch))
            for lr in args.scratch_lrs
        ],
    }
    return grids


def fit_phases(model, config, train_ds, steps: int, verbose: int = 0, show_table: bool = True) -> None:
    """Run every phase of `plan_phases(config)`: freeze, print the phase (and its parameter table), compile, fit."""
    from keras_resnet.train.finetune import freeze, parameter_table, plan_phases
    from keras_resnet.train.trainer import compile_model

    for phase in plan_phases(config):
        freeze(model, phase.freeze, train_batchnorm=phase.train_batchnorm)
        print(f"  phase {phase.name!r}: epochs {phase.initial_epoch + 1}-{phase.end_epoch}, freeze={phase.freeze}, "
              f"LR x{phase.learning_rate_scale:g}, BatchNorm {'trains' if phase.train_batchnorm else 'frozen'}")
        if show_table:
            print("    " + parameter_table(model).replace("\n", "\n    "))
        compile_model(model, config, phase, steps)
        model.fit(train_ds, epochs=phase.end_epoch, initial_epoch=phase.initial_epoch, verbose=verbose,
                  shuffle=False)  # the dataset shuffles


def evaluate(model, x, y, mean, std) -> tuple[float, float]:
    """Top-1 accuracy (%) and mean cross-entropy of ``model`` on uint8 images ``x`` with int labels ``y``."""
    probabilities = model.predict(make_dataset(x, y, mean, std, 256, False, 0), verbose=0)
    accuracy = float(100.0 * np.mean(np.argmax(probabilities, axis=-1) == y))
    loss = float(-np.mean(np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-7, 1.0))))
    return accuracy, loss


def select(runs: list[dict]) -> dict:
    """The run with the highest validation accuracy (ties: lowest finite validation loss, then grid order).

    Args:
        runs: Dicts with ``"val_accuracy"`` and ``"val_loss"``.

    Returns:
        The selected dict. Test figures are never looked at.
    """
    def key(run):
        loss = run["val_loss"]
        return -run["val_accuracy"], loss if np.isfinite(loss) else float("inf")

    return min(runs, key=key)


def _float_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers. Received: {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers. Received: {text!r}")
    return values


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers. Received: {text!r}") from None
    if len(set(values)) != len(values) or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected distinct non-negative integers. Received: {text!r}")
    return values


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (see ``--help``); checks the epoch split before TensorFlow starts."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Learning rates are peak rates per 256 images, scaled linearly to the batch "
               f"({FINETUNE_BATCH} on the new task). Each method picks its configuration on the validation set.")
    parser.add_argument("--data-dir", default="../shared/datasets/cifar10",
                        help="CIFAR-10 image folder with train/<class>/*.jpg and test/<class>/*.jpg.")
    parser.add_argument("--work-dir", default=None,
                        help="Keeps the pretrained model (WORK_DIR/pretrained/model.keras); reused when present. "
                             "None: a new temporary directory.")
    parser.add_argument("--json", default=None, help="Also write the results here.")
    parser.add_argument("--seeds", type=_int_list, default="0,1,2",
                        help="One repetition per seed: its own few-shot sample, initialisation and shuffling. "
                             "The first also seeds pretraining. The headline figure is the mean over seeds.")
    parser.add_argument("--pretrain-epochs", type=int, default=30,
                        help="Epochs of pretraining on the source classes (ignored when the model is reused).")
    parser.add_argument("--shots", type=int, default=100, help="Labelled training images per new class.")
    parser.add_argument("--val-per-class", type=int, default=50,
                        help="Validation images per new class, from the train split, disjoint from the shots.")
    parser.add_argument("--finetune-epochs", type=int, default=30, help="Epoch budget of every method and config.")
    parser.add_argument("--head-epochs", type=int, default=10, help="Phase 1 (head only) of two-phase fine-tuning.")
    parser.add_argument("--head-lrs", type=_float_list, default="0.5,1,2", help="Grid of head_only: LR.")
    parser.add_argument("--two-phase-head-lr", type=float, default=1.0, help="Phase-1 LR of two-phase fine-tuning.")
    parser.add_argument("--two-phase-lr", type=float, default=0.4, help="Phase-2 LR of two-phase fine-tuning.")
    parser.add_argument("--two-phase-multipliers", type=_float_list, default="0.1,0.3,1",
                        help="Grid of two_phase (BatchNorm re-estimated): phase-2 backbone LR multiplier.")
    parser.add_argument("--frozen-bn-multipliers", type=_float_list, default="0.03,0.1,0.3",
                        help="Grid of two_phase_frozen_bn (library default, BatchNorm frozen): "
                             "phase-2 backbone LR multiplier.")
    parser.add_argument("--scratch-lrs", type=_float_list, default="0.1,0.2,0.4", help="Grid of scratch: LR.")
    args = parser.parse_args(argv)
    for name in ("pretrain_epochs", "shots", "val_per_class", "finetune_epochs", "head_epochs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1. Received: {getattr(args, name)!r}")
    if args.head_epochs >= args.finetune_epochs:
        parser.error(f"--head-epochs must be below --finetune-epochs. "
                     f"Received: {args.head_epochs!r} >= {args.finetune_epochs!r}")
    if args.shots * len(TARGET_CLASSES) < FINETUNE_BATCH:
        parser.error(f"--shots x {len(TARGET_CLASSES)} classes must fill one batch of {FINETUNE_BATCH}. "
                     f"Received: shots={args.shots!r}")
    return args


def pretrain(args, pretrained_path: Path, mean, std, x_src, y_src):
    """Load the pretrained source model from ``pretrained_path``, or train and save it there.

    Returns:
        ``(model, seconds)``; seconds is None when the model was reused.
    """
    import keras

    from keras_resnet import build_resnet
    from keras_resnet.runs import atomic_save_model

    if pretrained_path.is_file():
        print(f"Reusing the pretrained model {pretrained_path}")
        return keras.models.load_model(pretrained_path, compile=False), None
    keras.utils.set_random_seed(args.seeds[0])
    config = make_config(args.pretrain_epochs, 0.2, PRETRAIN_BATCH)
    model = build_resnet("resnet20", num_classes=len(SOURCE_CLASSES))
    started = time.time()
    print(f"Pretraining ResNet-20 on {', '.join(SOURCE_CLASSES)} for {args.pretrain_epochs} epochs")
    fit_phases(model, config, make_dataset(x_src, y_src, mean, std, PRETRAIN_BATCH, True, args.seeds[0]),
               len(x_src) // PRETRAIN_BATCH, verbose=2)
    seconds = time.time() - started
    atomic_save_model(model, pretrained_path)
    return model, seconds


def print_tables(results: dict) -> None:
    """Print the per-seed selected configurations, every configuration, and the mean over seeds (markdown)."""
    n_val, n_test = results["val_images"], results["test_images"]
    print(f"\nSelected on validation ({n_val} images per seed); test = {n_test} images of the new classes\n")
    print("| seed | method | selected config | val accuracy | test accuracy |\n|---|---|---|---|---|")
    for seed, methods in results["seeds"].items():
        for name, method in methods.items():
            chosen = method["selected"]
            print(f"| {seed} | {name} | {chosen['label']} | {chosen['val_accuracy']:.2f}% | "
                  f"{chosen['test_accuracy']:.2f}% |")
    print("\nEvery configuration (* = selected)\n")
    print("| seed | method | config | val accuracy | val loss | test accuracy | seconds |\n"
          "|---|---|---|---|---|---|---|")
    for seed, methods in results["seeds"].items():
        for name, method in methods.items():
            for run in method["grid"]:
                mark = " *" if run["label"] == method["selected"]["label"] else ""
                print(f"| {seed} | {name} | {run['label']}{mark} | {run['val_accuracy']:.2f}% | "
                      f"{run['val_loss']:.3f} | {run['test_accuracy']:.2f}% | {run['seconds']} |")
    print(f"\nMean over seeds {list(results['seeds'])} of the validation-selected test accuracy\n")
    print("| method | mean | per seed |\n|---|---|---|")
    for name, summary in results["mean_test_accuracy"].items():
        print(f"| {name} | {summary['mean']:.2f}% | {' / '.join(f'{v:.2f}' for v in summary['per_seed'])} |")
    gain = results["two_phase_minus_scratch"]
    print(f"\ntwo_phase - scratch on test: mean {gain['mean']:+.2f} points "
          f"(per seed {', '.join(f'{v:+.2f}' for v in gain['per_seed'])}; total {results['total_seconds']}s)")


def run_seed(args, seed: int, root: Path, pretrained_path: Path, mean, std, x_test, y_test) -> tuple[dict, int]:
    """Every method's grid on one seed's few-shot sample, each configuration validation-selected.

    Returns:
        ``({method: {"grid": [run, ...], "selected": run}}, validation image count)``.
    """
    import keras

    from keras_resnet import build_resnet
    from keras_resnet.models.specs import get_spec
    from keras_resnet.models.weights import load_pretrained

    (x_new, y_new), (x_val, y_val) = load_few_shot(root, TARGET_CLASSES, args.shots, args.val_per_class, seed)
    steps = len(x_new) // FINETUNE_BATCH
    new_train = make_dataset(x_new, y_new, mean, std, FINETUNE_BATCH, True, seed)
    spec = get_spec("resnet20")
    methods = {}
    for method, grid in build_grids(args, pretrained_path).items():
        runs = []
        for i, candidate in enumerate(grid):
            keras.utils.set_random_seed(seed)
            t0 = time.time()
            print(f"\nseed {seed}, {method} [{candidate.label}]: {args.finetune_epochs} epochs x {steps} steps "
                  f"of {FINETUNE_BATCH} images")
            model = build_resnet("resnet20", num_classes=len(TARGET_CLASSES))
            if candidate.config.model.weights is not None:
                load_pretrained(model, spec, candidate.config.model.weights, skip_head=True, verbose=i == 0)
            fit_phases(model, candidate.config, new_train, steps, show_table=i == 0)
            val_accuracy, val_loss = evaluate(model, x_val, y_val, mean, std)
            test_accuracy, _ = evaluate(model, x_test, y_test, mean, std)
            runs.append({"label": candidate.label, "params": candidate.params,
                         "val_accuracy": round(val_accuracy, 2), "val_loss": round(val_loss, 4),
                         "test_accuracy": round(test_accuracy, 2), "seconds": round(time.time() - t0)})
            print(f"seed {seed}, {method} [{candidate.label}]: val {val_accuracy:.2f}% (loss {val_loss:.3f}), "
                  f"test {test_accuracy:.2f}% ({time.time() - t0:.0f}s)", flush=True)
        methods[method] = {"grid": runs, "selected": select(runs)}
    return methods, len(x_val)


def summarise(per_seed: dict) -> tuple[dict, dict]:
    """Mean over seeds of each method's selected test accuracy, and of two_phase minus scratch.

    Args:
        per_seed: ``{seed: {method: {"selected": {"test_accuracy": ...}, ...}}}``.

    Returns:
        ``({method: {"mean", "per_seed"}}, {"mean", "per_seed"})``, rounded to 0.01.
    """
    accuracy = {
        method: [methods[method]["selected"]["test_accuracy"] for methods in per_seed.values()]
        for method in next(iter(per_seed.values()))
    }
    gains = [a - b for a, b in zip(accuracy["two_phase"], accuracy["scratch"])]
    return ({m: {"mean": round(float(np.mean(v)), 2), "per_seed": v} for m, v in accuracy.items()},
            {"mean": round(float(np.mean(gains)), 2), "per_seed": [round(g, 2) for g in gains]})


def main(argv=None) -> dict:
    """Run the benchmark and print (and optionally save) the figures.

    Returns:
        The results dict (also written to ``--json`` when given).
    """
    args = parse_args(argv)

    started = time.time()
    root = Path(args.data_dir)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="kresnet-transfer-"))
    pretrained_path = work / "pretrained" / "model.keras"
    x_src, y_src = load_split(root, "train", SOURCE_CLASSES)
    x_src_test, y_src_test = load_split(root, "test", SOURCE_CLASSES)
    x_test, y_test = load_split(root, "test", TARGET_CLASSES)
    mean = x_src.reshape(-1, 3).mean(axis=0).astype("float32")
    std = x_src.reshape(-1, 3).std(axis=0).astype("float32")
    print(f"Loaded {len(x_src)} source and {len(x_test)} new test images in {time.time() - started:.0f}s")

    pretrain_model, pretrain_seconds = pretrain(args, pretrained_path, mean, std, x_src, y_src)
    del x_src, y_src
    source_accuracy, _ = evaluate(pretrain_model, x_src_test, y_src_test, mean, std)
    results = {"pretrain": {
        "classes": SOURCE_CLASSES, "model": str(pretrained_path), "reused": pretrain_seconds is None,
        "epochs": None if pretrain_seconds is None else args.pretrain_epochs,
        "seconds": None if pretrain_seconds is None else round(pretrain_seconds),
        "test_accuracy": round(source_accuracy, 2),
    }, "seeds": {}}
    print(f"Pretrained model: {source_accuracy:.2f}% on the source classes' test split")

    for seed in args.seeds:
        results["seeds"][seed], val_images = run_seed(args, seed, root, pretrained_path, mean, std, x_test, y_test)
    results["mean_test_accuracy"], results["two_phase_minus_scratch"] = summarise(results["seeds"])
    results.update({
        "shots": args.shots, "val_per_class": args.val_per_class, "val_images": val_images,
        "test_images": len(x_test), "finetune_epochs": args.finetune_epochs, "head_epochs": args.head_epochs,
        "total_seconds": round(time.time() - started), "cpu_count": os.cpu_count(),
        "machine": platform.platform(), "date": datetime.date.today().isoformat(),
    })
    print_tables(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
