"""Test accuracy of the default CIFAR-10 recipe by wall-clock minute of training.

Trains ``configs/cifar10_resnet20.yaml`` (or --config) and, at each epoch end,
evaluates on the test split; the evaluation time is excluded from the training
clock. Stops after --minutes of training (the epoch in progress finishes).

    python benchmarks/time_to_accuracy.py --minutes 30
    python benchmarks/time_to_accuracy.py --minutes 3 --set training.epochs=2
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    """Parse arguments, train, print one line per epoch and a summary table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="cifar10_resnet20")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--set", dest="set_values", action="append", default=[])
    args = parser.parse_args()

    import keras

    from keras_resnet.train.config import find_recipe, load_config
    from keras_resnet.train.trainer import train

    config = load_config(find_recipe(args.config), overrides={"run_dir": args.run_dir} if args.run_dir else None,
                         set_values=[*args.set_values, "training.progress=epoch"])
    rows = []

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.train_seconds, self.t0 = 0.0, None

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.train_seconds += time.perf_counter() - self.t0
            _, top1, _ = self.model.evaluate(self.test, verbose=0)[:3]
            rows.append((epoch + 1, self.train_seconds / 60, top1))
            print(f"[time-to-accuracy] epoch {epoch + 1}: {self.train_seconds / 60:.2f} min, test top-1 {top1:.4f}",
                  flush=True)
            if self.train_seconds >= args.minutes * 60:
                self.model.stop_training = True

    clock = Clock()

    def datasets():
        from keras_resnet.data.pipeline import build_datasets

        built = build_datasets(config.data, seed=config.training.seed)
        clock.test = built.test
        return built

    train(config, datasets=datasets, callbacks=[clock])
    print("\nminute  epoch  test top-1")
    for epoch, minutes, top1 in rows:
        print(f"{minutes:6.2f}  {epoch:5d}  {top1:.4f}")


if __name__ == "__main__":
    main()
