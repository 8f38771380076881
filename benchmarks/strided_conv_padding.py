"""The CIFAR ResNets' stride-2 convolutions in three padding forms, timed in turns in one process.

kresnet's CIFAR ResNets pad a stride-2 3x3 convolution's input by one pixel on every side, as the
paper and PyTorch do: a ``ZeroPadding2D`` layer, then a ``valid`` convolution (Keras' ``Conv2D``
has no symmetric padding for even inputs). "Where the step's time goes" in BENCHMARKS.md found
TensorFlow 1.17-1.34x slower than PyTorch on exactly these two convolutions and named the
separate pad (a ``Pad`` op forward, a slice of the input gradient backward) as the likely cost.
This measures that, for each stride-2 convolution of the nets, forward plus input and filter
gradients, batch ``--batch-size``:

- ``pad_valid``: ``tf.pad`` then a ``VALID`` convolution (what kresnet's two layers run);
- ``explicit``: one ``tf.nn.conv2d`` with explicit paddings ``[[0, 0], [1, 1], [1, 1], [0, 0]]``,
  the same arithmetic without the separate pad;
- ``same``: ``padding="SAME"``, which for a stride-2 3x3 convolution on an even input pads 0
  pixels top/left and 1 bottom/right: a different model (the sampled grid moves by one pixel),
  measured only to show what the asymmetric Keras default would buy.

The forms take turns: each round runs ``--iterations`` steps of each form, the order reversing
every round; the per-round ratio is the form's time over ``pad_valid``'s (below 1: faster).
TensorFlow starts as the ``kresnet`` command starts it (oneDNN on unless
``TF_ENABLE_ONEDNN_OPTS`` is set).

Example:
    python benchmarks/strided_conv_padding.py --rounds 8 --iterations 20 \\
        --json benchmarks/results/strided_conv_padding_avx2.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # train_throughput, beside this script
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train_throughput import machine_info, versions  # noqa: E402

FORMS = ("pad_valid", "explicit", "same")
# (input height = width, in channels, out channels) of the stride-2 convolutions of every CIFAR ResNet
# (resnet20 ... resnet110: stage 2's and stage 3's first block).
CIFAR_STRIDED = ((32, 16, 32), (16, 32, 64))
SYMMETRIC = [[0, 0], [1, 1], [1, 1], [0, 0]]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=8, help="measured rounds (a warm-up comes first)")
    parser.add_argument("--iterations", type=int, default=20, help="steps per form per round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser.parse_args(argv)


def convolve(form: str, x, kernel):
    """One stride-2 3x3 convolution of ``x`` (NHWC) with ``kernel`` (HWIO) in padding form ``form``.

    Args:
        form: One of `FORMS`.
        x: A float tensor, batch x height x width x channels.
        kernel: A 3 x 3 x in x out float tensor.

    Returns:
        The output, batch x height/2 x width/2 x out.
    """
    import tensorflow as tf

    if form == "pad_valid":
        return tf.nn.conv2d(tf.pad(x, SYMMETRIC), kernel, strides=2, padding="VALID")
    if form == "explicit":
        return tf.nn.conv2d(x, kernel, strides=2, padding=SYMMETRIC)
    if form == "same":
        return tf.nn.conv2d(x, kernel, strides=2, padding="SAME")
    raise ValueError(f"form: expected one of {', '.join(FORMS)}, got {form!r}")


def training_step(form: str, hw: int, cin: int, cout: int, batch: int, seed: int):
    """A compiled function: ``form``'s convolution forward, then the input and filter gradients.

    Returns:
        A no-argument ``tf.function`` returning (output, input gradient, filter gradient).
    """
    import tensorflow as tf

    generator = tf.random.Generator.from_seed(seed)
    x = generator.normal([batch, hw, hw, cin])
    kernel = tf.Variable(generator.normal([3, 3, cin, cout]) * 0.1)
    upstream = generator.normal([batch, hw // 2, hw // 2, cout])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = convolve(form, x, kernel)
        dx, dw = tape.gradient(y, [x, kernel], output_gradients=upstream)
        return y, dx, dw

    return step


def summarise(times: dict[str, list[float]]) -> dict:
    """Medians per form (ms per step) and each form's per-round ratio to ``pad_valid``.

    Args:
        times: Per form, milliseconds per step of each round (the rounds in the same order).

    Returns:
        ``{"ms": {form: median}, "ratio_to_pad_valid": {form: {"median", "min", "max"}}}``.
    """
    base = times["pad_valid"]
    ratios = {}
    for form, values in times.items():
        per_round = [value / reference for value, reference in zip(values, base)]
        ratios[form] = {"median": statistics.median(per_round), "min": min(per_round), "max": max(per_round)}
    return {"ms": {form: statistics.median(values) for form, values in times.items()}, "ratio_to_pad_valid": ratios}


def measure(shape, args) -> dict[str, list[float]]:
    """Times every form on one convolution shape in turns; returns ms per step per round, per form."""
    hw, cin, cout = shape
    steps = {form: training_step(form, hw, cin, cout, args.batch_size, args.seed) for form in FORMS}
    for step in steps.values():  # trace and warm up
        for _ in range(max(2, args.iterations // 4)):
            step()[0].numpy()
    times = {form: [] for form in FORMS}
    for round_index in range(args.rounds):
        for form in FORMS if round_index % 2 == 0 else FORMS[::-1]:
            started = time.perf_counter()
            for _ in range(args.iterations):
                step_output = steps[form]()
            step_output[1].numpy()
            times[form].append((time.perf_counter() - started) / args.iterations * 1e3)
    return times


def main(argv=None) -> None:
    args = parse_args(argv)
    from keras_resnet.compat import import_tensorflow_quietly

    import_tensorflow_quietly()
    started = time.time()
    results = []
    print(f"ms per step (forward + input and filter gradients), batch {args.batch_size}; "
          f"per-round ratio to pad_valid, median (min-max)")
    for shape in CIFAR_STRIDED:
        summary = summarise(measure(shape, args))
        results.append({"hw": shape[0], "cin": shape[1], "cout": shape[2], **summary})
        cells = ", ".join(
            f"{form} {summary['ms'][form]:.2f} ms ({r['median']:.3f}, {r['min']:.3f}-{r['max']:.3f})"
            for form, r in summary["ratio_to_pad_valid"].items())
        print(f"{shape[0]}x{shape[0]} {shape[1]}->{shape[2]} stride 2: {cells}")
    if args.json:
        from keras_resnet.files import atomic_write_json

        atomic_write_json(args.json, {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                                      "machine": machine_info(), "versions": versions(),
                                      "seconds": time.time() - started, "results": results})


if __name__ == "__main__":
    main()
