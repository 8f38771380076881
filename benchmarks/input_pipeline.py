"""Input-pipeline throughput beside ResNet-20's training-step throughput, on this machine.

Measures, in one process so both see the same (shared, noisy) CPU:

1. the training pipeline of `keras_resnet.data.build_datasets` over an image folder
   (default ``../shared/datasets/cifar10``): epoch 1 decodes the JPEGs and fills the
   memory cache, later epochs read from the cache (shuffle + batch-level augmentation
   + normalisation included);
2. ResNet-20's training step (``model.fit`` on one repeated batch of the same batch
   size, so no input cost is counted), in images/s;

and prints the cache-to-model ratio (target: >= 5x, so input never stalls training) as the
median over the cached epochs, with the worst and best beside it.

Normalisation defaults to "unit" so epoch 1 really decodes JPEGs; with "dataset"
the JPEG pass happens inside build_datasets (mean/std) and is reported as build time.

Example:
    python benchmarks/input_pipeline.py --data-dir ../shared/datasets/cifar10 --epochs 3 --json results/input_pipeline.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def time_epoch(dataset) -> tuple[int, float]:
    """Iterate one epoch; (images, seconds)."""
    start = time.perf_counter()
    images = 0
    for batch in dataset:
        images += int(batch[0].shape[0])
    return images, time.perf_counter() - start


def model_images_per_second(batch, num_classes: int, steps: int, model_name: str) -> float:
    """ResNet training-step throughput (images/s) with model.fit on one repeated batch."""
    import keras
    import tensorflow as tf

    from keras_resnet.models import build_resnet

    # the pipeline delivers raw pixels: the model normalises them, as every trained kresnet model does
    model = build_resnet(model_name, num_classes=num_classes, input_shape=tuple(batch[0].shape[1:]),
                         include_preprocessing=True, preprocessing="unit")
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=[keras.metrics.CategoricalAccuracy()],
    )
    data = tf.data.Dataset.from_tensors((batch[0], batch[1])).repeat()
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)  # trace + warm up
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return steps * int(batch[0].shape[0]) / (time.perf_counter() - start)


def main() -> None:
    """Parse arguments, run the measurements, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="../shared/datasets/cifar10")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3, help="pipeline epochs (1 from JPEG, the rest from cache)")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps of the model")
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--normalization", default="unit")
    parser.add_argument("--cache", default="memory")
    parser.add_argument("--flip-mode", choices=("random", "alternate"), default="random",
                        help="data.augment.flip_mode: Keras' RandomFlip, or the tf.where of alternating flips")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()

    import tensorflow as tf

    from keras_resnet.data import AugmentConfig, DataConfig, build_datasets

    config = DataConfig(
        dataset=args.dataset, data_dir=args.data_dir, batch_size=args.batch_size,
        normalization=args.normalization, cache=args.cache, augment=AugmentConfig(flip_mode=args.flip_mode),
    )
    print(f"date: {datetime.date.today()}  machine: {platform.machine()}, {os.cpu_count()} CPU cores, "
          f"TensorFlow {tf.__version__}")
    print(f"data: {args.data_dir}  batch {args.batch_size}  cache {args.cache}  normalization {args.normalization}  "
          f"augment: CIFAR default (pad 4 + random crop, horizontal flip, flip_mode {args.flip_mode})")
    start = time.perf_counter()
    data = build_datasets(config, seed=0)
    print(f"build_datasets (list + check {sum(data.split_sizes.values())} files, holdout): {time.perf_counter() - start:.1f} s; "
          f"splits {data.split_sizes}")
    rates = []
    for epoch in range(1, args.epochs + 1):
        images, seconds = time_epoch(data.train)
        rates.append(images / seconds)
        label = "from JPEG (decode + fill cache)" if epoch == 1 and args.cache != "none" else "from cache"
        print(f"pipeline epoch {epoch} {label}: {images} images in {seconds:.1f} s = {images / seconds:,.0f} images/s")
    batch = next(iter(data.train))
    model_rate = model_images_per_second(batch, len(data.class_names), args.steps, args.model)
    print(f"{args.model} training step (model.fit, batch {args.batch_size}): {model_rate:,.0f} images/s")
    images, seconds = time_epoch(data.train)
    cached_rates = [*rates[1:], images / seconds]
    median = statistics.median(cached_rates)
    print(f"pipeline epoch after the model run, from cache: {images / seconds:,.0f} images/s")
    print(f"ratio pipeline (median of {len(cached_rates)} cached epochs) / model: {median / model_rate:.1f}x "
          f"(target >= 5x; worst {min(cached_rates) / model_rate:.1f}x, best {max(cached_rates) / model_rate:.1f}x)")
    print(f"ratio pipeline (first epoch, JPEG) / model: {rates[0] / model_rate:.1f}x")
    if args.json:
        record = {"date": str(datetime.date.today()), "cpus": os.cpu_count(), "tensorflow": tf.__version__,
                  "args": vars(args), "split_sizes": data.split_sizes, "jpeg_epoch_images_per_s": rates[0],
                  "cached_epochs_images_per_s": cached_rates, "model_images_per_s": model_rate,
                  "ratio_median_cached": median / model_rate, "ratio_jpeg": rates[0] / model_rate}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
