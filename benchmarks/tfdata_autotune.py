"""`model.evaluate` on kresnet's evaluation pipelines with and without tf.data's autotune thread, in turns.

tf.data starts a performance-model thread for every iterator of a pipeline with
``autotune.enabled`` (TensorFlow's default). It wakes at doubling intervals (10 ms, 20 ms, ...
up to 60 s) to re-tune buffer sizes and parallelism. Deleting the iterator joins that thread, and
on a loaded 2-core machine the join was seen to wait for the thread's next wake-up (the main
thread blocked in ``RootDataset::Iterator::~Iterator``, seen with ``py-spy dump --native``), so an
evaluation ended seconds after its last batch. Keras makes a new iterator of the validation data
every epoch, so kresnet builds its val/test splits without the thread
(`keras_resnet.data.pipeline.without_autotune_thread`).

Two variants of one pipeline, set on top of it with ``Dataset.with_options``:

``autotune_off``
    ``autotune.enabled = False``;
``autotune_on``
    ``autotune.enabled = True`` (TensorFlow's default).

The pipeline (``--cache``):

``memory``
    the test split as `kresnet train` builds its validation and test splits
    (`keras_resnet.data.build_datasets`: decoded once into a memory cache, filled by the warm-up
    evaluation, then batch, one-hot, prefetch): what is evaluated after every epoch;
``none``
    the split as `kresnet evaluate` reads it (`keras_resnet.data.inference.evaluation_dataset`:
    files read, decoded and resized on every pass).

The model is a freshly initialised ``--model`` (its weights do not change the time). Each round
evaluates the split once per variant (the order alternates per round, so drift of a shared
machine hits both alike), in one process, after one untimed warm-up evaluation. Per evaluation
it reports the wall-clock seconds of ``model.evaluate`` and the seconds from the end of its last
batch to its return (the iterator teardown); the summary gives medians and the per-round ratio
on / off.

Example:
    python benchmarks/tfdata_autotune.py --data-dir ../shared/datasets/cifar10 --cache memory --rounds 6 \\
        --json benchmarks/results/tfdata_autotune_memory_2026-12-01.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = ("autotune_off", "autotune_on")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/datasets/cifar10", help="An image folder with a test/ split.")
    parser.add_argument("--dataset", default="cifar10", help="data.dataset of the source (cifar10 or folder).")
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--cache", choices=("none", "memory"), default="none",
                        help="none: the split as `kresnet evaluate` reads it (decoded on every pass); memory: as "
                             "`kresnet train` builds its val/test splits (decoded once into a memory cache, "
                             "filled by the warm-up).")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="Write the figures here.")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1. Received: {args.rounds}")
    return args


def with_autotune(dataset, enabled: bool):
    """``dataset`` with tf.data's autotune thread switched on or off."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = enabled
    return dataset.with_options(options)


def evaluation_split(args):
    """The split to evaluate, built by kresnet's own functions; ``(dataset, class_names, size, name)``.

    ``--cache memory``: `build_datasets`' val/test split (``normalization: unit``, so the train
    split is only listed, never decoded); ``--cache none``: `evaluation_dataset`'s.
    """
    from keras_resnet.data.inference import evaluation_dataset
    from keras_resnet.data.options import DataConfig
    from keras_resnet.data.pipeline import build_datasets
    from keras_resnet.models.specs import get_spec

    image_size = get_spec(args.model).default_input_shape[:2]
    if args.cache == "none":
        config = DataConfig(dataset=args.dataset, data_dir=args.data_dir, batch_size=args.batch_size)
        data = evaluation_dataset(config, args.split, image_size)
        return data.dataset, data.class_names, data.size, data.name
    config = DataConfig(dataset=args.dataset, data_dir=args.data_dir, batch_size=args.batch_size, cache="memory",
                        normalization="unit", image_size=int(image_size[0]))
    data = build_datasets(config, seed=0)
    split = {"test": data.test, "val": data.val}.get(args.split)
    if split is None:
        raise SystemExit(f"--split must be test or val (with a validation split). Received: --split {args.split}")
    return split, data.class_names, data.split_sizes[args.split], data.fingerprint["name"]


def timed_evaluate(model, dataset) -> dict:
    """Evaluate once; returns ``{"seconds", "teardown_seconds", "batches"}``.

    ``teardown_seconds`` runs from the end of the last batch to ``evaluate``'s return.
    """
    import keras

    ends: list[float] = []

    class BatchEnds(keras.callbacks.Callback):
        def on_test_batch_end(self, batch, logs=None):
            ends.append(time.perf_counter())

    start = time.perf_counter()
    model.evaluate(dataset, verbose=0, callbacks=[BatchEnds()])
    done = time.perf_counter()
    return {"seconds": done - start, "teardown_seconds": done - ends[-1] if ends else 0.0, "batches": len(ends)}


def summarise(rounds: list[dict]) -> dict:
    """Medians per variant and the per-round ratio on / off of the evaluate seconds.

    Args:
        rounds: One ``{variant: timed_evaluate(...)}`` per round.

    Returns:
        ``{"autotune_off": {...}, "autotune_on": {...}, "ratio_on_over_off": {...}}`` with
        median seconds, median and max teardown seconds, and the ratio's median, min and max.

    Example:
        >>> summarise([{"autotune_off": {"seconds": 10.0, "teardown_seconds": 0.0},
        ...             "autotune_on": {"seconds": 20.0, "teardown_seconds": 9.5}}])["ratio_on_over_off"]["median"]
        2.0
    """
    out = {}
    for variant in VARIANTS:
        seconds = [r[variant]["seconds"] for r in rounds]
        teardown = [r[variant]["teardown_seconds"] for r in rounds]
        out[variant] = {
            "median_seconds": statistics.median(seconds),
            "median_teardown_seconds": statistics.median(teardown),
            "max_teardown_seconds": max(teardown),
            "rounds_with_teardown_over_1s": sum(t > 1.0 for t in teardown),
        }
    ratios = [r["autotune_on"]["seconds"] / r["autotune_off"]["seconds"] for r in rounds]
    out["ratio_on_over_off"] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    from keras_resnet.compat import import_tensorflow_quietly
    from keras_resnet.cpu_kernels import cpu_model

    import_tensorflow_quietly()
    import tensorflow as tf

    from keras_resnet.models.resnet import build_resnet

    dataset, class_names, size, name = evaluation_split(args)
    model = build_resnet(args.model, num_classes=len(class_names), include_preprocessing=True)
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    datasets = {"autotune_off": with_autotune(dataset, False), "autotune_on": with_autotune(dataset, True)}
    print(f"{name} {args.split}: {size} images, cache {args.cache}, batch {args.batch_size}, {args.model}; "
          f"TensorFlow {tf.__version__}", flush=True)
    timed_evaluate(model, datasets["autotune_off"])  # warm-up: tracing, file cache
    rounds = []
    for index in range(args.rounds):
        order = VARIANTS if index % 2 == 0 else VARIANTS[::-1]
        result = {variant: timed_evaluate(model, datasets[variant]) for variant in order}
        rounds.append(result)
        print(f"round {index + 1}: " + "  ".join(
            f"{v} {result[v]['seconds']:.2f} s (teardown {result[v]['teardown_seconds']:.2f} s)" for v in VARIANTS), flush=True)
    summary = summarise(rounds)
    for variant in VARIANTS:
        s = summary[variant]
        print(f"{variant}: median {s['median_seconds']:.2f} s per evaluation, teardown median "
              f"{s['median_teardown_seconds']:.2f} s, max {s['max_teardown_seconds']:.2f} s, over 1 s in "
              f"{s['rounds_with_teardown_over_1s']} of {args.rounds} rounds")
    ratio = summary["ratio_on_over_off"]
    print(f"on / off per round: median {ratio['median']:.3f} (min {ratio['min']:.3f}, max {ratio['max']:.3f})")
    report = {"args": vars(args), "rounds": rounds, "summary": summary, "tensorflow": tf.__version__,
              "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version()}}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
