"""Where a CIFAR ResNet's training step spends its time: TensorFlow (as kresnet runs it) vs. PyTorch,
layer by layer, side by side.

``train_throughput.py`` measures kresnet's whole training path against plain PyTorch; this script
splits the step into its layers to say where the difference is. For every distinct layer of
``resnet{depth}`` at batch ``--batch-size`` (float32, NHWC / channels_last) each framework times:

``conv``
    one 3x3 convolution forward and its backward: the input and the filter gradients (the stem's
    input needs none). Stride 2 pads explicitly, as kresnet's blocks do (``ZeroPadding2D`` then
    a ``valid`` convolution; PyTorch pads inside ``conv2d``).
``bn_relu``
    BatchNorm in training mode followed by ReLU, forward and backward (input, scale and offset
    gradients), moving statistics updated. TensorFlow: ``FusedBatchNormV3``, the op of kresnet's
    fused path (``keras_resnet.compat.fuse_batch_norm``); PyTorch: ``batch_norm``.
``step``
    the whole training step of the model: forward, loss, backward, SGD (momentum 0.9, Nesterov).
    TensorFlow: kresnet's builder with the fused BatchNorm, ``train_on_batch``; PyTorch: the same
    option-A ResNet as ``train_throughput.py``'s torch mode.

The two frameworks run in two processes that take turns (``train_throughput.py``'s
``--interleave`` machinery): one turn is ``--iterations`` runs of one item, the order reverses
every round, so each pair of figures comes from the same few seconds of this noisy machine. The
summary gives, per item, the median milliseconds per run in each framework and the per-round
ratio TensorFlow / PyTorch; and per training step the items times their count in the net, so the
layers' share of the step, and what is left (residual adds, shortcuts, pooling, head, loss,
optimizer, framework), can be compared.

    python benchmarks/layer_kernels.py --torch-python /tmp/torchvenv/bin/python --rounds 8 \\
        --json benchmarks/results/layer_kernels.json

TensorFlow starts as the ``kresnet`` command starts it (oneDNN on, ``keras_resnet.compat``). PyTorch
is not a kresnet dependency: ``--torch-python`` names an interpreter that has torch and numpy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # train_throughput, beside this script

from train_throughput import (  # noqa: E402
    EpochGate,
    GatedWorker,
    cifar_depth,
    machine_info,
    parse_gate_fds,
    run_turns,
    torch_resnet_cifar,
    versions,
)

FRAMEWORKS = ("tensorflow", "torch")
KINDS = ("conv", "bn_relu", "step")
NUM_CLASSES = 10
BN_EPSILON, BN_MOMENTUM = 1e-5, 0.9  # kresnet's CIFAR nets: Keras momentum 0.9 = PyTorch momentum 0.1


@dataclass(frozen=True)
class Item:
    """One timed item: a layer kind at one shape (``hw`` is the input's height = width), or the whole step."""

    kind: str  # conv | bn_relu | step
    hw: int
    cin: int
    cout: int
    stride: int
    count: int  # how many of it one training step runs
    stem: bool = False

    @property
    def name(self) -> str:
        if self.kind == "step":
            return "step"
        if self.kind == "bn_relu":
            return f"bn_relu {self.hw}x{self.hw}x{self.cin}"
        stride = f" /{self.stride}" if self.stride > 1 else ""
        return f"conv {self.hw}x{self.hw} {self.cin}->{self.cout}{stride}" + (" (stem)" if self.stem else "")


def items_for(depth: int, kinds=KINDS) -> list[Item]:
    """The distinct layers of the CIFAR ResNet of ``depth`` = 6n+2, each with its count, then the whole step
    (only the items of ``kinds``).

    ResNet-20 (n=3): 19 convolutions (the stem and two per block) and 19 BatchNorm+ReLU pairs
    (the block's second ReLU comes after the residual add; it is counted with its BatchNorm).
    """
    n = (depth - 2) // 6
    items = [Item("conv", 32, 3, 16, 1, 1, stem=True), Item("bn_relu", 32, 16, 16, 1, 1 + 2 * n)]
    items.append(Item("conv", 32, 16, 16, 1, 2 * n))
    for hw, cin, cout in ((32, 16, 32), (16, 32, 64)):
        items += [Item("conv", hw, cin, cout, 2, 1), Item("conv", hw // 2, cout, cout, 1, 2 * n - 1),
                  Item("bn_relu", hw // 2, cout, cout, 1, 2 * n)]
    items.append(Item("step", 32, 3, NUM_CLASSES, 1, 1))  # the whole net: RGB in, NUM_CLASSES out
    return [item for item in items if item.kind in kinds]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet20", help="a CIFAR ResNet: resnet20, resnet32, ... (default resnet20)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=10, help="runs of an item per turn (default 10)")
    parser.add_argument("--rounds", type=int, default=6, help="turns per item and framework (default 6)")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help="items to time, a comma list of conv, bn_relu, step (default all; 'step' alone compares whole steps)")
    parser.add_argument("--torch-python", help="a Python with torch and numpy for the PyTorch process (default: this one)")
    parser.add_argument("--json", dest="out", help="write the rounds and the summary here")
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument("--gate-fds", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if cifar_depth(args.model) is None:
        parser.error(f"--model must be a CIFAR ResNet (resnet20, resnet32, resnet44, resnet56, resnet110); received {args.model!r}")
    args.kind_list = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    unknown = sorted(set(args.kind_list) - set(KINDS))
    if unknown or not args.kind_list:
        parser.error(f"--kinds takes a comma list of {', '.join(KINDS)}; received {args.kinds!r}")
    if min(args.batch_size, args.iterations, args.rounds) < 1:
        parser.error("--batch-size, --iterations and --rounds must be at least 1")
    return args


# --------------------------------------------------------------------------- the TensorFlow worker


def tensorflow_runner(item: Item, batch: int, depth: int):
    """A no-argument callable that runs ``item`` once in TensorFlow, the way kresnet's training runs it."""
    import numpy as np

    from keras_resnet.compat import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow as tf

    rng = np.random.default_rng(0)
    if item.kind == "step":
        return _tensorflow_step(item, batch, depth, rng)
    x = tf.constant(rng.standard_normal((batch, item.hw, item.hw, item.cin), dtype="float32"))
    if item.kind == "conv":
        out = item.hw // item.stride
        w = tf.Variable((rng.standard_normal((3, 3, item.cin, item.cout)) * np.sqrt(2.0 / (9 * item.cin))).astype("float32"))
        dy = tf.constant(rng.standard_normal((batch, out, out, item.cout), dtype="float32"))
        sources = [w] if item.stem else [x, w]

        @tf.function
        def conv():
            with tf.GradientTape() as tape:
                tape.watch(x)
                if item.stride > 1:
                    y = tf.nn.conv2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), w, item.stride, "VALID")
                else:
                    y = tf.nn.conv2d(x, w, 1, "SAME")
            return y, tape.gradient(y, sources, output_gradients=dy)

        return conv
    # kresnet's own path: a Keras BatchNormalization (momentum and epsilon of its CIFAR nets) run
    # through keras_resnet.compat.fuse_batch_norm, then Keras' ReLU.
    import keras

    from keras_resnet.compat import fuse_batch_norm

    inputs = keras.Input((item.hw, item.hw, item.cin))
    norm = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON)
    layer = keras.Model(inputs, keras.layers.ReLU()(norm(inputs)))
    if fuse_batch_norm(layer) != 1:
        raise SystemExit("layer_kernels: fuse_batch_norm did not take the BatchNormalization layer")
    dz = tf.constant(rng.standard_normal(x.shape, dtype="float32"))

    @tf.function
    def bn_relu():
        with tf.GradientTape() as tape:
            tape.watch(x)
            z = layer(x, training=True)
        return z, tape.gradient(z, [x, norm.gamma, norm.beta], output_gradients=dz)

    return bn_relu


def _tensorflow_step(item: Item, batch: int, depth: int, rng):
    import keras

    import keras_resnet as kr
    from keras_resnet.compat import fuse_batch_norm

    model = kr.build_resnet(f"resnet{depth}", num_classes=item.cout, input_shape=(item.hw, item.hw, 3))
    fuse_batch_norm(model)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9, nesterov=True),
                  loss="sparse_categorical_crossentropy")
    x = rng.standard_normal((batch, item.hw, item.hw, 3), dtype="float32")
    y = rng.integers(0, item.cout, batch)
    return lambda: model.train_on_batch(x, y)


# --------------------------------------------------------------------------- the PyTorch worker


def torch_runner(item: Item, batch: int, depth: int):
    """A no-argument callable that runs ``item`` once in eager PyTorch, channels_last."""
    import torch

    functional = torch.nn.functional
    generator = torch.Generator().manual_seed(0)
    last = torch.channels_last

    def randn(*shape):  # NCHW logical shape, channels_last memory
        return torch.randn(*shape, generator=generator).contiguous(memory_format=last)

    if item.kind == "step":
        model = torch_resnet_cifar(torch, depth, item.cout).to(memory_format=last)
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        x, y = randn(batch, 3, item.hw, item.hw), torch.randint(0, item.cout, (batch,), generator=generator)

        def step():
            loss = functional.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return step
    x = randn(batch, item.cin, item.hw, item.hw).requires_grad_(not item.stem)
    if item.kind == "conv":
        out = item.hw // item.stride
        w = (torch.randn(item.cout, item.cin, 3, 3, generator=generator) * (2.0 / (9 * item.cin)) ** 0.5).contiguous(memory_format=last)
        w.requires_grad_(True)
        dy = randn(batch, item.cout, out, out)

        def conv():
            x.grad = w.grad = None
            functional.conv2d(x, w, stride=item.stride, padding=1).backward(dy)

        return conv
    scale, offset = torch.ones(item.cin, requires_grad=True), torch.zeros(item.cin, requires_grad=True)
    running_mean, running_var = torch.zeros(item.cin), torch.ones(item.cin)
    dz = randn(*x.shape)

    def bn_relu():
        x.grad = scale.grad = offset.grad = None
        y = functional.batch_norm(x, running_mean, running_var, scale, offset, training=True,
                                  momentum=1.0 - BN_MOMENTUM, eps=BN_EPSILON)
        functional.relu(y).backward(dz)

    return bn_relu


def run_worker(args) -> None:
    """Build every item, run each twice (warm-up, tf.function tracing), then time one item per turn."""
    depth = cifar_depth(args.model)
    if args.worker == "torch":
        import torch

        torch.manual_seed(0)
        make = torch_runner
    else:
        make = tensorflow_runner
    items = items_for(depth, args.kind_list)
    runners = [make(item, args.batch_size, depth) for item in items]
    for run in runners:
        run()
        run()
    gate = EpochGate(parse_gate_fds(args.gate_fds))
    for turn in range(len(items) * args.rounds):
        gate.wait()
        run = runners[turn % len(items)]
        for _ in range(args.iterations):
            run()
    gate.wait()


# --------------------------------------------------------------------------- orchestration and summary


def worker_command(args, framework: str, fds) -> list[str]:
    python = args.torch_python if framework == "torch" and args.torch_python else sys.executable
    return [python, str(Path(__file__).resolve()), "--worker", framework, "--gate-fds", f"{fds[0]},{fds[1]}",
            "--model", args.model, "--batch-size", str(args.batch_size), "--iterations", str(args.iterations),
            "--rounds", str(args.rounds), "--kinds", args.kinds]


def summarise(rounds: list[list[list]], items: list[Item], iterations: int) -> dict:
    """Per item: median ms per run in each framework and the per-round TensorFlow / PyTorch ratio;
    per step: each layer kind's total (median x count) and what the step spends outside the layers.

    ``rounds[r]`` holds the turns of round r as ``[framework, seconds]``; round r timed ``items[r % len(items)]``.
    """
    per_item = []
    for index, item in enumerate(items):
        turns = [dict(reports) for reports in rounds[index :: len(items)]]
        ms = {fw: [1000.0 * turn[fw] / iterations for turn in turns] for fw in FRAMEWORKS}
        ratios = [a / b for a, b in zip(ms["tensorflow"], ms["torch"])]
        per_item.append({**asdict(item), "name": item.name, "turns": len(turns),
                         "ms": {fw: statistics.median(values) for fw, values in ms.items()},
                         "ratio_tf_over_torch": {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}})
    per_step = {}
    kinds = {row["kind"] for row in per_item}
    for fw in FRAMEWORKS:
        totals = {kind: sum(row["ms"][fw] * row["count"] for row in per_item if row["kind"] == kind)
                  for kind in ("conv", "bn_relu") if kind in kinds}
        if "step" in kinds:
            totals["step"] = next(row["ms"][fw] for row in per_item if row["kind"] == "step")
            if {"conv", "bn_relu"} <= kinds:
                totals["rest"] = totals["step"] - totals["conv"] - totals["bn_relu"]
        per_step[fw] = totals
    per_step["ratio_tf_over_torch"] = {key: per_step["tensorflow"][key] / per_step["torch"][key]
                                       for key in per_step["torch"] if per_step["torch"][key] > 0}
    return {"items": per_item, "per_step_ms": per_step}


def print_summary(summary: dict, args) -> None:
    print(f"\n{args.model}, batch {args.batch_size}, float32; ms per run (median of {args.rounds} turns of {args.iterations} runs)")
    print(f"{'item':34s} {'count':>5s} {'TensorFlow':>11s} {'PyTorch':>9s}  TF/PyTorch per round: median (min-max)")
    for row in summary["items"]:
        r = row["ratio_tf_over_torch"]
        print(f"{row['name']:34s} {row['count']:5d} {row['ms']['tensorflow']:11.2f} {row['ms']['torch']:9.2f}  "
              f"{r['median']:.3f} ({r['min']:.3f}-{r['max']:.3f})")
    step = summary["per_step_ms"]
    print("\nper training step, ms (layer medians x count; rest = step - layers):")
    for key in [k for k in ("conv", "bn_relu", "rest", "step") if k in step["torch"]]:
        ratio = step["ratio_tf_over_torch"].get(key)
        print(f"  {key:8s} TensorFlow {step['tensorflow'][key]:8.1f}  PyTorch {step['torch'][key]:8.1f}"
              + (f"  TF/PyTorch {ratio:.3f}" if ratio is not None else ""))


def orchestrate(args) -> dict:
    items = items_for(cifar_depth(args.model), args.kind_list)
    machine = machine_info()
    workers = []
    try:
        for framework in FRAMEWORKS:
            worker = GatedWorker(framework, lambda fds, fw=framework: worker_command(args, fw, fds),
                                 env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")))
            workers.append(worker)
            if worker.next_report() != "start":
                raise SystemExit(f"layer_kernels: the {framework} worker did not reach its first turn")
        started = time.time()
        rounds = run_turns(workers, len(items) * args.rounds,
                           log=lambda line: print(line.replace("[throughput]", "[layer_kernels]"), flush=True))
        for worker in workers:
            if worker.process.wait() != 0:
                raise SystemExit(f"layer_kernels: the {worker.name} worker failed; see its output above")
    finally:
        for worker in workers:
            worker.close()
    summary = summarise(rounds, items, args.iterations)
    result = {"settings": {k: v for k, v in vars(args).items() if k not in ("worker", "gate_fds", "out", "kind_list")},
              "machine": machine, "versions": versions(), "seconds": time.time() - started,
              "rounds": rounds, **summary}
    print_summary(summary, args)
    if args.out:
        from keras_resnet.files import atomic_write_json

        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, result)
        print(f"wrote {path}")
    return result


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
