"""Test accuracy of a CIFAR-10 recipe by wall-clock minute of training.

Trains ``configs/cifar10_resnet20.yaml`` (or --config) and, at each epoch end,
evaluates on the test split, plain and with flip test-time augmentation (the mean
of each image's and its mirror image's probabilities); the evaluation time is
excluded from the training clock. Stops after --minutes of training (the epoch in
progress finishes). --eval-every N scores the test split only every N-th epoch and at the
last one (long runs: each evaluation costs about 7 seconds for ResNet-20 on 2 cores); the
other epochs still get a row, with the test columns null, so the clock resumes exactly.
With --json, every epoch's row is written there as it ends; a run resumed with the same
--run-dir and --json continues both the run and the clock (the minutes of earlier
sessions are read back from the JSON).

    python benchmarks/time_to_accuracy.py --minutes 30 --json benchmarks/results/tta.json
    python benchmarks/time_to_accuracy.py --minutes 3 --set training.epochs=2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path


def main() -> None:
    """Parse arguments, train, print one line per epoch and a summary table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="cifar10_resnet20")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--json", default=None, help="Write the per-epoch rows and the settings here.")
    parser.add_argument("--set", dest="set_values", action="append", default=[])
    parser.add_argument("--eval-every", type=int, default=1, help="score the test split every N epochs (and the last)")
    args = parser.parse_args()

    from keras_resnet.compat import import_tensorflow_quietly

    import_tensorflow_quietly()  # as `kresnet train` starts TensorFlow (oneDNN's CPU kernels on, quiet start-up)
    import keras

    from keras_resnet.cpu_kernels import cpu_model, onednn_record
    from keras_resnet.train.config import config_to_dict, find_recipe, load_config
    from keras_resnet.train.evaluate import predict_dataset_tta
    from keras_resnet.train.trainer import train

    config = load_config(find_recipe(args.config), overrides={"run_dir": args.run_dir} if args.run_dir else None,
                         set_values=[*args.set_values, "training.progress=epoch"])
    out = Path(args.json) if args.json else None
    record = json.loads(out.read_text()) if out and out.is_file() else {"rows": []}
    record.update(config=args.config, set=args.set_values, resolved=config_to_dict(config),
                  machine={"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
                           "cpu": cpu_model(), "onednn": onednn_record()})
    rows = record["rows"]

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.train_seconds = rows[-1]["minutes"] * 60 if rows else 0.0
            self.t0 = None

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.train_seconds += time.perf_counter() - self.t0
            row = {"epoch": epoch + 1, "minutes": round(self.train_seconds / 60, 3), "test_top1": None,
                   "test_top1_tta_flip": None, "train_accuracy": float((logs or {}).get("accuracy", float("nan"))),
                   "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
            last = epoch + 1 == config.training.epochs or self.train_seconds >= args.minutes * 60
            if (epoch + 1) % args.eval_every == 0 or last:
                plain, labels, flipped = predict_dataset_tta(self.model, self.test, "flip")
                row.update(test_top1=float((plain.argmax(1) == labels).mean()),
                           test_top1_tta_flip=float((flipped.argmax(1) == labels).mean()))
            rows.append(row)
            print(f"[time-to-accuracy] epoch {row['epoch']}: {row['minutes']:.2f} min, test top-1 "
                  f"{_percent(row['test_top1'])} (flip TTA {_percent(row['test_top1_tta_flip'])})", flush=True)
            if out:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(record, indent=1) + "\n")
            if self.train_seconds >= args.minutes * 60:
                self.model.stop_training = True

    clock = Clock()

    def datasets():
        from keras_resnet.data.pipeline import build_datasets

        built = build_datasets(config.data, seed=config.training.seed)
        clock.test = built.test
        return built

    train(config, datasets=datasets, callbacks=[clock])
    print("\nminute  epoch  test top-1  flip TTA")
    for row in rows:
        print(f"{row['minutes']:6.2f}  {row['epoch']:5d}  {_percent(row['test_top1']):>10}  "
              f"{_percent(row['test_top1_tta_flip']):>8}")


def _percent(value) -> str:
    return "-" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    main()
