"""Training images/s with Keras' SGD update vs. the same update on one TensorFlow kernel per variable, interleaved.

An experiment on where the last few percent to PyTorch go (BENCHMARKS.md, "The SGD update on
TensorFlow's kernel: measured, not adopted"). Keras 3's ``SGD.update_step`` builds the
momentum update from about ten small ops per variable, and its TensorFlow weight decay
evaluates the learning-rate schedule once per decayed variable. The ``fused_sgd`` variant here
replaces, on its optimizer instance only, ``update_step`` with ``ResourceApplyKerasMomentum``
(TensorFlow's kernel for exactly Keras' rule: ``m = momentum * m - lr * g``; Nesterov
``w += momentum * m - lr * g``) and the weight decay with the same decoupled decay on the
schedule evaluated once (checked against Keras' update on a small Dense + BatchNorm model,
Nesterov and weight decay on, 16 steps of a one-cycle schedule: the weights agree within 6e-7).
kresnet does not ship it: measured, it gave no speed-up beyond this machine's noise.

Both variants are the same model (built twice from one seed, BatchNorm on TensorFlow's fused
kernel as `kresnet train` runs it), compiled as `kresnet train` compiles it: the recipe's
optimizer (`keras_resnet.train.optim.build_optimizer` with its defaults, the recipe's values:
Nesterov SGD, decoupled weight decay 5e-3 on kernels; peak rate 0.4 per 256 images) on a one-cycle
schedule over the run (one warm-up epoch of ``--steps``), label-smoothed cross-entropy, accuracy
and top-5. Synthetic images in a cached tf.data pipeline.

On a shared 2-core machine the speed jumps by up to 25% within a minute, more than the effect
measured here, so instead of one process per variant the two models take turns in one process:
each round runs `--steps` steps of one, then of the other (the order alternates per round), and
the ratio is taken within each round. Reported: images/s per variant (median over rounds) and
the median, min and max of the per-round ratio fused / Keras.

Example:
    python benchmarks/optimizer_step.py --precision mixed_bfloat16 --batch-size 128 --rounds 12 \\
        --json benchmarks/results/optimizer_step_bf16_b128.json
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = ("keras_sgd", "fused_sgd")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--precision", default="mixed_bfloat16", choices=["float32", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--steps", type=int, default=20, help="steps per variant per round")
    parser.add_argument("--rounds", type=int, default=12, help="measured rounds (one warm-up round comes first)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser.parse_args(argv)


def fuse_sgd_update(optimizer) -> None:
    """Replace this SGD instance's update and weight decay by one TensorFlow kernel per variable (see above)."""
    import types

    import keras
    import tensorflow as tf

    def update_step(self, gradient, variable, learning_rate):
        var = variable.value if isinstance(variable, keras.Variable) else variable
        momentum = self.momentums[self._get_variable_index(variable)].value
        return tf.raw_ops.ResourceApplyKerasMomentum(
            var=var.handle, accum=momentum.handle, lr=tf.cast(learning_rate, var.dtype),
            grad=tf.cast(gradient, var.dtype), momentum=tf.cast(self.momentum, var.dtype),
            use_nesterov=self.nesterov)

    def apply_weight_decay(self, variables):
        decayed = [v for v in variables if self.weight_decay is not None and self._use_weight_decay(v)]
        if decayed:
            step = tf.cast(self.learning_rate, tf.float32) * self.weight_decay
            for variable in decayed:
                var = variable.value if isinstance(variable, keras.Variable) else variable
                var.assign_sub(var * tf.cast(step, var.dtype))

    optimizer.update_step = types.MethodType(update_step, optimizer)
    optimizer._apply_weight_decay = types.MethodType(apply_weight_decay, optimizer)


def build_variant(args, fused: bool):
    import keras

    from keras_resnet.compat import fuse_batch_norm
    from keras_resnet.config.schema import OptimizerConfig, ScheduleConfig
    from keras_resnet.models import build_resnet
    from keras_resnet.train.optim import build_optimizer
    from keras_resnet.train.schedules import build_schedule, scaled_learning_rate

    keras.utils.set_random_seed(args.seed)
    model = build_resnet(args.model, num_classes=10, input_shape=(args.image_size, args.image_size, 3))
    fuse_batch_norm(model)
    total_epochs = args.rounds + 1
    peak = scaled_learning_rate(0.4, args.batch_size, 256)
    schedule = build_schedule(ScheduleConfig(name="one_cycle", warmup_epochs=1), peak, total_epochs, args.steps)
    optimizer = build_optimizer(OptimizerConfig(), schedule, model)
    if fused:
        fuse_sgd_update(optimizer)
    model.compile(optimizer=optimizer, loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"),
                           keras.metrics.TopKCategoricalAccuracy(k=5, name="top5_accuracy")])
    return model


def timed_round(model, dataset, steps: int, epoch: int) -> float:
    start = time.perf_counter()
    model.fit(dataset, epochs=epoch + 1, initial_epoch=epoch, steps_per_epoch=steps, shuffle=False, verbose=0)
    return time.perf_counter() - start


def main(argv=None) -> None:
    args = parse_args(argv)
    import keras
    import numpy as np
    import tensorflow as tf

    keras.mixed_precision.set_global_policy(args.precision)
    rng = np.random.default_rng(args.seed)
    n = args.steps * args.batch_size
    images = rng.normal(size=(n, args.image_size, args.image_size, 3)).astype("float32")
    labels = keras.utils.to_categorical(rng.integers(0, 10, n), 10)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(args.batch_size).cache().repeat().prefetch(-1)
    models = {name: build_variant(args, name == "fused_sgd") for name in VARIANTS}
    seconds = {name: [] for name in VARIANTS}
    for round_index in range(args.rounds + 1):
        order = VARIANTS if round_index % 2 == 0 else VARIANTS[::-1]
        for name in order:
            took = timed_round(models[name], dataset, args.steps, round_index)
            if round_index > 0:  # round 0 traces the step functions
                seconds[name].append(took)
    images_per_round = args.steps * args.batch_size
    rates = {name: [images_per_round / s for s in seconds[name]] for name in VARIANTS}
    ratios = [f / k for f, k in zip(rates["fused_sgd"], rates["keras_sgd"])]
    result = {
        "settings": vars(args) | {"json": str(args.json) if args.json else None},
        "machine": {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "load_average": os.getloadavg(), "tensorflow": tf.__version__, "keras": keras.__version__,
                    "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS")},
        "images_per_second": rates,
        "median_images_per_second": {name: statistics.median(rates[name]) for name in VARIANTS},
        "ratio_fused_over_keras": {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
                                   "per_round": ratios},
    }
    print(f"{args.model}, batch {args.batch_size}, {args.image_size}px, {args.precision}, {args.steps} steps x "
          f"{args.rounds} rounds per variant, interleaved")
    for name in VARIANTS:
        r = rates[name]
        print(f"  {name:10s} median {statistics.median(r):8.1f} images/s  (min {min(r):.1f}, max {max(r):.1f})")
    print(f"  fused / Keras per round: median {statistics.median(ratios):.3f}  (min {min(ratios):.3f}, "
          f"max {max(ratios):.3f})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
