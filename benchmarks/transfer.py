"""Transfer benchmark: does a pretrained ResNet-20 help on a small new task?

1. Pretrain ResNet-20 on the CIFAR-10 classes airplane, automobile, bird, cat, deer
   (all 25,000 training images).
2. New task: dog, frog, horse, ship, truck with only ``--shots`` (100) labelled
   training images per class. With the same epoch budget compare
   * ``head_only``: pretrained backbone frozen, a new 5-class head trained;
   * ``two_phase``: the new head first (higher LR), then the backbone unfrozen at a
     lower LR (`FinetuneConfig(head_epochs=..., unfreeze="none")`), BatchNorm
     statistics re-estimated (``train_batchnorm=True``);
   * ``two_phase_frozen_bn``: the same with the library default for pretrained
     weights, BatchNorm frozen (and a smaller backbone LR, which that needs);
   * ``scratch``: the same ResNet-20 from random initialisation (a few learning
     rates; the best counts).
   All are tested on those five classes' full test split (5,000 images).

Uses the library end to end: `build_resnet`, `load_pretrained(skip_head=True)`,
`plan_phases`, `freeze`, `parameter_table`, and the trainer's `compile_model`
(optimizer, schedule, per-stage learning rates).

Usage:
    python benchmarks/transfer.py --data-dir ../shared/datasets/cifar10
"""

from __future__ import annotations

import argparse
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


def load_split(root: Path, split: str, classes, per_class: int | None = None, seed: int = 0):
    """uint8 images [N,32,32,3] and int labels of ``classes`` from ``root/split/<class>/*.jpg``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, name in enumerate(classes):
        files = sorted((root / split / name).glob("*.jpg"))
        if not files:
            raise FileNotFoundError(f"No JPEG images in {root / split / name}. Expected the CIFAR-10 image folder.")
        if per_class is not None:
            files = [files[i] for i in sorted(rng.choice(len(files), per_class, replace=False))]
        for path in files:
            with Image.open(path) as image:
                images.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
        labels += [label] * len(files)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


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
    """A `TrainConfig` for one method (SGD + Nesterov, cosine with a short warmup)."""
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


def fit_phases(model, config, train_ds, steps: int, verbose: int = 0) -> None:
    """Run every phase of `plan_phases(config)`: freeze, print the table, compile, fit."""
    from keras_resnet.train.finetune import freeze, parameter_table, plan_phases
    from keras_resnet.train.trainer import compile_model

    for phase in plan_phases(config):
        freeze(model, phase.freeze, train_batchnorm=phase.train_batchnorm)
        print(f"  phase {phase.name!r}: epochs {phase.initial_epoch + 1}-{phase.end_epoch}, freeze={phase.freeze}, "
              f"LR x{phase.learning_rate_scale:g}, BatchNorm {'trains' if phase.train_batchnorm else 'frozen'}")
        print("    " + parameter_table(model).replace("\n", "\n    "))
        compile_model(model, config, phase, steps)
        model.fit(train_ds, epochs=phase.end_epoch, initial_epoch=phase.initial_epoch, verbose=verbose)


def accuracy(model, x, y, mean, std) -> float:
    """Top-1 accuracy (%) of ``model`` on uint8 images ``x`` with int labels ``y``."""
    probabilities = model.predict(make_dataset(x, y, mean, std, 256, False, 0), verbose=0)
    return float(100.0 * np.mean(np.argmax(probabilities, axis=-1) == y))


def main(argv=None) -> dict:
    """Run the benchmark and print (and optionally save) the figures.

    Returns:
        The results dict (also written to ``--json`` when given).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="../shared/datasets/cifar10")
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--finetune-epochs", type=int, default=30, help="Budget of every transfer method.")
    parser.add_argument("--head-epochs", type=int, default=10, help="Phase 1 of two-phase fine-tuning.")
    parser.add_argument("--shots", type=int, default=100, help="Labelled training images per new class.")
    parser.add_argument("--scratch-lrs", default="0.1,0.2,0.4", help="Learning rates tried for scratch; the best counts.")
    parser.add_argument("--work-dir", default=None, help="Where the pretrained model is kept (default: a temp dir).")
    parser.add_argument("--json", default=None, help="Also write the results here.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import keras

    from keras_resnet import build_resnet
    from keras_resnet.models.specs import get_spec
    from keras_resnet.models.weights import load_pretrained
    from keras_resnet.runs import atomic_save_model

    started = time.time()
    root = Path(args.data_dir)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="kresnet-transfer-"))
    x_src, y_src = load_split(root, "train", SOURCE_CLASSES)
    x_src_test, y_src_test = load_split(root, "test", SOURCE_CLASSES)
    x_new, y_new = load_split(root, "train", TARGET_CLASSES, per_class=args.shots, seed=args.seed)
    x_new_test, y_new_test = load_split(root, "test", TARGET_CLASSES)
    mean = x_src.reshape(-1, 3).mean(axis=0).astype("float32")
    std = x_src.reshape(-1, 3).std(axis=0).astype("float32")
    print(f"Loaded {len(x_src)} source, {len(x_new)} new training images, {len(x_new_test)} new test images "
          f"in {time.time() - started:.0f}s")

    results = {"pretrain": {}, "methods": {}}
    pretrained_path = work / "pretrained" / "model.keras"
    if pretrained_path.is_file():
        print(f"Reusing {pretrained_path}")
        pretrain_model = keras.models.load_model(pretrained_path, compile=False)
        pretrain_seconds = None
    else:
        keras.utils.set_random_seed(args.seed)
        batch = 128
        config = make_config(args.pretrain_epochs, 0.2, batch)
        pretrain_model = build_resnet("resnet20", num_classes=len(SOURCE_CLASSES))
        t0 = time.time()
        print(f"Pretraining ResNet-20 on {', '.join(SOURCE_CLASSES)} for {args.pretrain_epochs} epochs")
        fit_phases(pretrain_model, config, make_dataset(x_src, y_src, mean, std, batch, True, args.seed),
                   len(x_src) // batch, verbose=2)
        pretrain_seconds = time.time() - t0
        atomic_save_model(pretrain_model, pretrained_path)
    results["pretrain"] = {
        "classes": SOURCE_CLASSES, "train_images": len(x_src), "epochs": args.pretrain_epochs,
        "seconds": None if pretrain_seconds is None else round(pretrain_seconds),
        "test_accuracy": round(accuracy(pretrain_model, x_src_test, y_src_test, mean, std), 2),
    }
    print(f"Pretrained model: {results['pretrain']['test_accuracy']:.2f}% on the source classes' test split")

    batch = 50
    steps = len(x_new) // batch
    new_train = make_dataset(x_new, y_new, mean, std, batch, True, args.seed)
    spec = get_spec("resnet20")

    def pretrained_model():
        model = build_resnet("resnet20", num_classes=len(TARGET_CLASSES))
        load_pretrained(model, spec, str(pretrained_path), skip_head=True)
        return model

    epochs, head = args.finetune_epochs, args.head_epochs
    methods = {
        "head_only": (pretrained_model, make_config(epochs, 1.0, batch, weights=str(pretrained_path), freeze="head_only")),
        # Phase 2 lets BatchNorm re-estimate its statistics on the new classes (same
        # image domain, batches of 50): measured better here than the Keras rule.
        "two_phase": (pretrained_model, make_config(
            epochs, 0.4, batch, weights=str(pretrained_path), head_epochs=head, head_learning_rate=1.0,
            unfreeze="none", backbone_lr_multiplier=0.3, train_batchnorm=True)),
        # The library default for pretrained weights: BatchNorm stays frozen in phase 2.
        "two_phase_frozen_bn": (pretrained_model, make_config(
            epochs, 0.4, batch, weights=str(pretrained_path), head_epochs=head, head_learning_rate=1.0,
            unfreeze="none", backbone_lr_multiplier=0.1)),
    }
    for lr in (float(v) for v in args.scratch_lrs.split(",")):
        methods[f"scratch_lr{lr:g}"] = (
            lambda: build_resnet("resnet20", num_classes=len(TARGET_CLASSES)), make_config(epochs, lr, batch))
    for name, (factory, config) in methods.items():
        keras.utils.set_random_seed(args.seed)
        t0 = time.time()
        print(f"\n{name}: {epochs} epochs x {steps} steps of {batch} images")
        model = factory()
        fit_phases(model, config, new_train, steps)
        acc = accuracy(model, x_new_test, y_new_test, mean, std)
        results["methods"][name] = {"test_accuracy": round(acc, 2), "seconds": round(time.time() - t0)}
        print(f"{name}: {acc:.2f}% on {len(x_new_test)} test images ({time.time() - t0:.0f}s)")

    scratch = max((v["test_accuracy"], k) for k, v in results["methods"].items() if k.startswith("scratch"))
    two_phase = results["methods"]["two_phase"]["test_accuracy"]
    results.update({
        "best_scratch": scratch[1], "two_phase_minus_scratch": round(two_phase - scratch[0], 2),
        "shots": args.shots, "finetune_epochs": epochs, "head_epochs": head,
        "total_seconds": round(time.time() - started), "cpu_count": os.cpu_count(),
        "machine": platform.platform(), "date": datetime.date.today().isoformat(),
    })
    print("\n| method | test accuracy (5 new classes, 5000 images) |\n|---|---|")
    for name, value in results["methods"].items():
        print(f"| {name} | {value['test_accuracy']:.2f}% |")
    print(f"two-phase - best scratch = {results['two_phase_minus_scratch']:+.2f} points "
          f"(total {results['total_seconds']}s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
