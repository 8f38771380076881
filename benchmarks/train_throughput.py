"""Training throughput (images/s) on synthetic data: a plain Keras script, kresnet's training path, plain PyTorch.

Modes (``--modes``, a comma list; each repeat of each mode runs in a fresh child process, and the
modes take turns within a repeat, so slow drift of a shared machine hits them alike):

``bare``
    What a plain Keras script does: ``build_resnet(..., include_preprocessing=True)`` compiled with
    SGD (momentum 0.9, Nesterov) + sparse categorical cross-entropy + accuracy, ``model.fit`` on
    in-memory uint8 images. With the TensorFlow backend the input is
    ``tf.data.Dataset.from_tensor_slices((x, y)).batch(B).cache().prefetch(AUTOTUNE)``; with
    ``--backend jax`` (or ``torch``, Keras' torch backend) plain numpy arrays (``--bare-input``
    chooses; ``tfdata_no_autotune`` is the tf.data input without tf.data's autotune thread, whose
    join when Keras deletes each epoch's iterator can wait up to 60 s: BENCHMARKS.md, "tf.data's
    autotune thread"). Runs on the Keras backend ``--backend`` (default: ``$KERAS_BACKEND`` or tensorflow).
    As in ``torch``: batches in a fixed order (the data are random anyway), no weight decay, constant
    learning rate.
``kresnet`` (TensorFlow backend only)
    kresnet's whole training path, ``keras_resnet.train.trainer.train(config)``: the
    ``cifar10_resnet20`` recipe with ``model.name``, batch size, image size and precision
    overridden, reading a folder of random PNGs written once (ROOT/train/<class>/*.png, 10
    classes, ``steps x batch`` images, the same pixels as the other modes, plus one test image
    per class) with ``data.cache=memory``, ``data.validation_fraction=0``,
    ``training.evaluate_split=none``, ``training.tensorboard=false``, ``training.progress=none``.
    So it includes what the plain script does not: the tf.data stream (per-epoch seeded shuffle,
    one-hot labels), the recipe's one-cycle schedule, decoupled weight decay, label smoothing, the
    top-5 metric, and every epoch-end callback (history CSV, checkpoints, backup for resume).
    Augmentation is off by default, as in ``bare`` (``--kresnet-augment recipe`` keeps the
    recipe's pad-4 random crop + horizontal flip). BatchNorm runs on TensorFlow's fused kernel
    (``training.fused_batchnorm``, the default).
``kresnet_unfused``
    ``kresnet`` with ``training.fused_batchnorm: false``: Keras 3's own BatchNormalization layer,
    as in ``bare``. Side by side with ``kresnet`` it measures what the fused kernel gives.
``torch``
    The same option-A ResNet (CIFAR ResNet of He et al. 2015: 3x3 stem with 16 filters, 3 stages of
    n basic blocks at 16/32/64 channels, shortcut = stride-2 subsample + zero channels appended,
    as kresnet's ``Concatenate([x, zeros])``, BatchNorm eps 1e-5 momentum 0.1, no conv biases,
    global average pooling, Linear head) written here in plain PyTorch, eager, channels_last,
    SGD momentum 0.9 Nesterov, uint8 batches converted and normalised on the fly. PyTorch is not
    a kresnet dependency: this mode imports neither keras nor keras_resnet, so the script runs
    in a venv holding only torch and numpy; ``--torch-python`` runs the mode with that
    interpreter while the other modes use this one. CIFAR ResNets (resnet20/32/44/56/110) only.

Parameter counts (ResNet-20, 10 classes): kresnet's Keras model has ``count_params()`` 271,098 =
269,722 trainable + 1,376 BatchNorm moving mean/variance; the torch model has 269,722
``parameters()`` + 1,376 running-statistics buffers: the same architecture, counted the two
frameworks' ways (the ``preprocessing`` layer holds no weights). Every run prints both.

Precision: ``mixed_bfloat16`` pays off on CPUs with AVX512-BF16/AMX; ``mixed_float16`` is for GPUs (on
a CPU without float16 kernels torch emulates it: about 40x slower than float32 in a smoke test here).

Timing, the same in every mode: a Keras callback (a loop clock in torch) takes the time at each
epoch begin and at the end of training; an epoch lasts from its begin to the next epoch's begin,
so kresnet's epoch-end callbacks count. The first ``--warmup-epochs`` epochs (tracing/XLA
compilation, cache filling) are reported but not measured. images/s of a repeat = images in the
measured epochs / their seconds; the summary gives the median per mode and the ratios of the
medians (``kresnet/bare``: > 1 means kresnet's path is faster; ``bare/torch``).

``--interleave``: a shared machine's speed can jump by 1.5x within a minute, more than the
differences sought, and a repeat of one mode lasts about a minute. With ``--interleave`` the
modes' processes of a repeat are started together (one after the other, each waiting at its
first epoch) and take turns epoch by epoch: in each round every mode runs one epoch while the
others wait at an epoch begin (``EpochGate``: two pipes per worker), in an order that reverses
every round. An epoch's time excludes the wait. The summary then adds, for each pair of modes,
the ratio of their epochs in each measured round (median, min, max): both epochs ran within
the same few seconds.

Examples:
    python benchmarks/train_throughput.py                                   # bare + kresnet, resnet20, 3 repeats
    python benchmarks/train_throughput.py --modes bare,kresnet,torch --torch-python /tmp/torchvenv/bin/python \\
        --steps 50 --epochs 3 --repeats 5 --json results/throughput.json
    python benchmarks/train_throughput.py --precision mixed_bfloat16 --batch-size 256
    KERAS_BACKEND=jax python benchmarks/train_throughput.py --modes bare      # or --backend jax
    /tmp/torchvenv/bin/python benchmarks/train_throughput.py --modes torch   # no TensorFlow/Keras needed
    python benchmarks/train_throughput.py --model resnet18 --image-size 64 --batch-size 64
    python benchmarks/train_throughput.py --steps 5 --epochs 1 --repeats 1   # smoke test
    python benchmarks/train_throughput.py --modes kresnet,torch --torch-python /tmp/torchvenv/bin/python \\
        --interleave --steps 40 --epochs 10 --repeats 1                        # per-round ratios
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

KRESNET_MODES = ("kresnet", "kresnet_unfused")  # kresnet's TensorFlow training path, fused BatchNorm on / off
MODES = ("bare", *KRESNET_MODES, "torch")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
BACKENDS = ("tensorflow", "jax", "torch")
IMAGENET_DEPTHS = (18, 34, 50, 101, 152)
RECIPE = "cifar10_resnet20"
# CIFAR-10 channel statistics (0..255 scale), used by the torch mode's on-the-fly normalisation.
MEAN = (125.3, 123.0, 113.9)
STD = (63.0, 62.1, 66.7)
PACKAGES = ("kresnet", "tensorflow", "keras", "jax", "jaxlib", "torch", "numpy")


def cifar_depth(model: str) -> int | None:
    """The depth of a CIFAR ResNet name (``resnet20`` -> 20), None for the ImageNet ones and v2 nets."""
    match = re.fullmatch(r"resnet(\d+)", model)
    if not match:
        return None
    depth = int(match.group(1))
    return depth if depth not in IMAGENET_DEPTHS and depth >= 8 and (depth - 2) % 6 == 0 else None


def default_image_size(model: str) -> int:
    """The model's default input side: 224 for ImageNet ResNets, 32 for CIFAR ResNets."""
    match = re.fullmatch(r"resnet(\d+)(_v2)?", model)
    return 224 if match and int(match.group(1)) in IMAGENET_DEPTHS else 32


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet20", help="a kresnet model name (torch mode: a CIFAR ResNet)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width-multiplier", type=float, default=1.0,
                        help="scale every stage's filters (model.width_multiplier; 2 = a CIFAR ResNet at 32/64/128 channels)")
    parser.add_argument("--image-size", type=int, default=None, help="default: the model's (32 CIFAR, 224 ImageNet)")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="Keras dtype policy; torch: autocast to bfloat16/float16 (float16 with a GradScaler). "
                             "float16 is for GPUs: on CPUs without float16 kernels it is emulated and very slow")
    parser.add_argument("--steps", type=int, default=50, help="batches per epoch (the synthetic set is steps x batch)")
    parser.add_argument("--epochs", type=int, default=3, help="measured epochs per repeat, after the warm-up")
    parser.add_argument("--warmup-epochs", type=int, default=1, help="epochs run first and not measured")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per mode")
    parser.add_argument("--modes", default="bare,kresnet", help=f"comma list of {', '.join(MODES)}")
    parser.add_argument("--backend", choices=BACKENDS, default=os.environ.get("KERAS_BACKEND") or "tensorflow",
                        help="Keras backend of mode bare (default: $KERAS_BACKEND or tensorflow); kresnet needs tensorflow")
    parser.add_argument("--bare-input", choices=("auto", "tfdata", "tfdata_no_autotune", "numpy"), default="auto",
                        help="bare mode's input: auto = tf.data on the TensorFlow backend, numpy arrays otherwise; "
                             "tfdata_no_autotune = tf.data with autotune.enabled=False")
    parser.add_argument("--kresnet-augment", choices=("none", "recipe"), default="none",
                        help="kresnet mode: no augmentation (as bare) or the recipe's pad-4 crop + flip")
    parser.add_argument("--torch-python", default=None, help="interpreter for the torch mode (default: this one)")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads for TensorFlow and torch (default: each framework's own; not applied to JAX)")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--interleave", action="store_true",
                        help="start every mode's process of a repeat together and let them take turns epoch by epoch "
                             "(one mode runs at a time; the order alternates each round), so each round compares the "
                             "modes over the same few seconds: ratios per round, robust to a machine whose speed drifts")
    parser.add_argument("--json", default=None, metavar="OUT", help="write settings, machine and per-repeat results here")
    # Internal: one measurement in a child process.
    parser.add_argument("--worker", choices=MODES, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--gate-fds", default=None, help=argparse.SUPPRESS)  # --interleave: pipes "R,W" to the orchestrator
    args = parser.parse_args(argv)

    args.mode_list = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in args.mode_list if m not in MODES]
    if unknown or not args.mode_list:
        parser.error(f"--modes takes a comma list of {', '.join(MODES)}. Received: --modes {args.modes!r}")
    for name in ("batch_size", "steps", "epochs", "repeats", "num_classes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1. Received: {getattr(args, name)}")
    if not args.width_multiplier > 0:
        parser.error(f"--width-multiplier must be > 0. Received: {args.width_multiplier}")
    if args.warmup_epochs < 0:
        parser.error(f"--warmup-epochs must be >= 0. Received: {args.warmup_epochs}")
    if args.image_size is None:
        args.image_size = default_image_size(args.model)
    if set(KRESNET_MODES) & set(args.mode_list) and args.backend != "tensorflow":
        parser.error(f"modes {', '.join(KRESNET_MODES)} are kresnet's TensorFlow training path and run on the tensorflow backend only. "
                     f"Received: --backend {args.backend} (from --backend or KERAS_BACKEND); run --modes bare on {args.backend}")
    if cifar_depth(args.model) is not None:
        widths = cifar_widths(args.width_multiplier)
        if widths[1] != 2 * widths[0] or widths[2] != 2 * widths[1]:
            parser.error(f"{args.model}'s option-A shortcuts can only double the channels, but --width-multiplier "
                         f"{args.width_multiplier} gives stages of {'/'.join(map(str, widths))} channels. "
                         f"Use a multiplier that keeps them doubling (e.g. 0.5, 1.5, 2, 4)")
    if "torch" in args.mode_list and cifar_depth(args.model) is None:
        parser.error(f"mode torch implements the CIFAR option-A ResNets (resnet20, resnet32, resnet44, resnet56, resnet110). "
                     f"Received: --model {args.model}")
    if args.bare_input.startswith("tfdata") and args.backend != "tensorflow" and "bare" in args.mode_list:
        parser.error(f"--bare-input {args.bare_input} is for the tensorflow backend. Received: --backend {args.backend}")
    return args


# --------------------------------------------------------------------------- shared by the workers


def synthetic_arrays(args):
    """``steps x batch`` random uint8 images and balanced labels, the same in every mode."""
    import numpy as np

    rng = np.random.default_rng(args.seed)
    n = args.steps * args.batch_size
    images = rng.integers(0, 256, size=(n, args.image_size, args.image_size, 3), dtype=np.uint8)
    labels = rng.permutation(np.arange(n) % args.num_classes).astype(np.int64)
    return images, labels


def measured(args, epoch_seconds: list[float], images_per_epoch: int) -> dict:
    warm, timed = epoch_seconds[: args.warmup_epochs], epoch_seconds[args.warmup_epochs:]
    return {
        "warmup_seconds": warm,
        "epoch_seconds": timed,
        "images_per_epoch": images_per_epoch,
        "images_per_second": images_per_epoch * len(timed) / sum(timed) if timed and sum(timed) > 0 else float("nan"),
    }


def versions() -> dict:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


class EpochGate:
    """The worker's side of ``--interleave``: each epoch waits for the orchestrator's turn.

    At each gate (every epoch begin, and the end of training) the worker writes the seconds of the
    epoch it just ran (``start`` at the first gate) on one pipe and blocks until the orchestrator
    writes ``go`` on the other; the orchestrator gives the turn to one worker at a time, so the
    modes' epochs run one after the other and never share the CPU. Without pipes (``fds=None``)
    every gate returns at once.
    """

    def __init__(self, fds: tuple[int, int] | None):
        self.go = os.fdopen(fds[0], "r") if fds else None
        self.ready = os.fdopen(fds[1], "w") if fds else None
        self.started = None

    def wait(self) -> None:
        """Report the epoch just run (from the last ``go``), then block until the next ``go``."""
        if self.go is None:
            return
        self.ready.write("start\n" if self.started is None else f"{time.perf_counter() - self.started:.6f}\n")
        self.ready.flush()
        line = self.go.readline().strip()
        if line != "go":
            raise SystemExit(f"--interleave worker: expected 'go' from the orchestrator, received {line!r} (it stopped)")
        self.started = time.perf_counter()


def parse_gate_fds(text: str | None) -> tuple[int, int] | None:
    """``--gate-fds R,W`` -> (R, W); None without interleaving."""
    if not text:
        return None
    read, write = (int(part) for part in text.split(","))
    return read, write


class EpochTimes:
    """Epoch begin and end times: an epoch lasts from its begin to the next epoch's begin (the last:
    to the end of training), less any wait at an interleaving gate."""

    def __init__(self, gate: EpochGate):
        self.gate, self.starts, self.stops = gate, [], []

    def epoch_begin(self) -> None:
        if self.starts:
            self.stops.append(time.perf_counter())
        self.gate.wait()
        self.starts.append(time.perf_counter())

    def train_end(self) -> None:
        self.stops.append(time.perf_counter())
        self.gate.wait()

    def seconds(self) -> list[float]:
        return [b - a for a, b in zip(self.starts, self.stops)]


def epoch_clock(gate: EpochGate, time_epoch_end: bool = False):
    """A Keras callback keeping ``EpochTimes`` (and the model's parameter counts at the end of training).

    ``time_epoch_end`` also notes when each epoch's last batch ended, so ``epoch_end_seconds()``
    tells how much of each epoch the epoch-end work took (kresnet's checkpoints, history and
    backup). It adds a per-batch hook, so it is only used where one exists anyway (kresnet's
    NaN guard); a plain ``fit`` keeps none.
    """
    import keras

    class EpochClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times, self.counts, self.last_batch_ends = EpochTimes(gate), None, []

        def on_epoch_begin(self, epoch, logs=None):
            self.times.epoch_begin()
            self.last_batch_ends.append(None)

        def on_train_end(self, logs=None):
            self.counts = (self.model.count_params(), sum(int(w.numpy().size) for w in self.model.trainable_weights))
            self.times.train_end()

        def seconds(self) -> list[float]:
            return self.times.seconds()

        def epoch_end_seconds(self) -> list[float]:
            return [stop - end for stop, end in zip(self.times.stops, self.last_batch_ends) if end is not None]

    if time_epoch_end:
        def on_train_batch_end(self, batch, logs=None):
            self.last_batch_ends[-1] = time.perf_counter()

        EpochClock.on_train_batch_end = on_train_batch_end
    return EpochClock()


def set_keras_threads(threads: int | None) -> dict:
    import keras

    if keras.backend.backend() != "tensorflow":
        return {"intra_op": "default"}
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads() or "default (all cores)",
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads() or "default"}


# --------------------------------------------------------------------------- mode bare


def quiet_tensorflow() -> None:
    """Import TensorFlow without its start-up notices (the kresnet CLI's way), when Keras will run on it."""
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        from keras_resnet.compat import import_tensorflow_quietly

        import_tensorflow_quietly()


def bare_dataset(images, labels, batch_size: int, autotune: bool = True):
    """The plain script's tf.data input: in-memory tensors, batched, cached, prefetched.

    Args:
        images, labels: The synthetic arrays.
        batch_size: Images per batch.
        autotune: False sets ``autotune.enabled = False`` (no autotune thread per iterator).

    Returns:
        A finite ``tf.data.Dataset``: Keras makes a new iterator of it every epoch.
    """
    import tensorflow as tf

    from keras_resnet.data.pipeline import without_autotune_thread

    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size).cache().prefetch(tf.data.AUTOTUNE)
    return data if autotune else without_autotune_thread(data)


def run_bare(args) -> dict:
    # A plain Keras script gets TensorFlow's own choice of CPU kernels; quiet_tensorflow would
    # otherwise turn oneDNN on, as the kresnet command does (keras_resnet.cpu_kernels).
    from keras_resnet.cpu_kernels import ONEDNN_ENV, tensorflow_onednn_default

    os.environ.setdefault(ONEDNN_ENV, "1" if tensorflow_onednn_default() else "0")
    quiet_tensorflow()
    import keras

    backend = keras.backend.backend()
    if backend != args.backend:
        raise SystemExit(f"mode bare expected the Keras backend {args.backend!r}, got {backend!r} (KERAS_BACKEND is read at import)")
    threads = set_keras_threads(args.threads)
    if backend == "tensorflow":
        keras.utils.set_random_seed(args.seed)
    else:  # keras.utils.set_random_seed would import TensorFlow (to seed it) when it is installed
        import random

        import numpy as np

        random.seed(args.seed)
        np.random.seed(args.seed)
    keras.mixed_precision.set_global_policy(args.precision)

    import keras_resnet as kr

    model = kr.build_resnet(args.model, num_classes=args.num_classes, input_shape=(args.image_size, args.image_size, 3),
                            include_preprocessing=True, width_multiplier=args.width_multiplier)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    images, labels = synthetic_arrays(args)
    clock = epoch_clock(EpochGate(parse_gate_fds(args.gate_fds)))
    epochs = args.warmup_epochs + args.epochs
    source = args.bare_input if args.bare_input != "auto" else ("tfdata" if backend == "tensorflow" else "numpy")
    if source.startswith("tfdata"):
        data = bare_dataset(images, labels, args.batch_size, autotune=source == "tfdata")
        model.fit(data, epochs=epochs, shuffle=False, callbacks=[clock], verbose=0)
    else:
        model.fit(images, labels, batch_size=args.batch_size, epochs=epochs, shuffle=False, callbacks=[clock], verbose=0)
    steps = clock.params.get("steps") or args.steps
    params, trainable = clock.counts
    return {**measured(args, clock.seconds(), int(steps) * args.batch_size), "backend": backend, "input": source,
            "params": params, "trainable_params": trainable, "threads": threads, "tensorflow_imported": "tensorflow" in sys.modules,
            "dtype_policy": keras.mixed_precision.global_policy().name}


# --------------------------------------------------------------------------- mode kresnet


def write_image_folder(root: Path, args) -> None:
    """ROOT/train/<class>/*.png with the synthetic images (and one test image per class), once."""
    done = root / ".complete"
    if done.exists():
        return
    from PIL import Image

    images, labels = synthetic_arrays(args)
    for split, count in (("train", len(images)), ("test", args.num_classes)):
        for k in range(args.num_classes):
            (root / split / f"class{k:02d}").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            label = int(labels[i]) if split == "train" else i
            Image.fromarray(images[i]).save(root / split / f"class{label:02d}" / f"{i:06d}.png")
    done.write_text("ok\n")


def run_kresnet(args) -> dict:
    quiet_tensorflow()
    import keras

    if keras.backend.backend() != "tensorflow":
        raise SystemExit(f"mode kresnet needs the tensorflow backend. Received: KERAS_BACKEND={keras.backend.backend()}")
    threads = set_keras_threads(args.threads)
    root = Path(args.data_dir or tempfile.mkdtemp(prefix="train-throughput-data-"))
    write_image_folder(root, args)

    from keras_resnet.train.config import find_recipe, load_config
    from keras_resnet.train.trainer import train

    run_dir = Path(tempfile.mkdtemp(prefix=f"train-throughput-run{args.repeat}-", dir=root.parent))
    overrides = {
        "run_dir": str(run_dir),
        "model.name": args.model,
        "model.width_multiplier": args.width_multiplier,
        "data.dataset": None,
        "data.data_dir": str(root),
        "data.batch_size": args.batch_size,
        "data.image_size": args.image_size,
        "data.cache": "memory",
        "data.validation_fraction": 0.0,
        "training.epochs": args.warmup_epochs + args.epochs,
        "training.precision": args.precision,
        "training.seed": args.seed,
        "training.evaluate_split": "none",
        "training.tensorboard": False,
        "training.progress": "none",
        "training.fused_batchnorm": args.worker != "kresnet_unfused",
    }
    if args.kresnet_augment == "none":
        overrides["data.augment.enabled"] = False
    config = load_config(find_recipe(RECIPE), overrides=overrides)
    clock = epoch_clock(EpochGate(parse_gate_fds(args.gate_fds)), time_epoch_end=True)
    try:
        train(config, callbacks=[clock], log=lambda line: print(f"[kresnet] {line}", file=sys.stderr, flush=True))
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    steps = clock.params.get("steps") or args.steps
    params, trainable = clock.counts
    return {**measured(args, clock.seconds(), int(steps) * args.batch_size), "backend": keras.backend.backend(),
            "input": f"image folder -> kresnet tf.data (cache memory, augment {args.kresnet_augment})",
            "params": params, "trainable_params": trainable, "threads": threads,
            "dtype_policy": keras.mixed_precision.global_policy().name, "recipe": RECIPE,
            "epoch_end_seconds": clock.epoch_end_seconds()[args.warmup_epochs:]}


# --------------------------------------------------------------------------- mode torch


def cifar_widths(width_multiplier: float) -> list:
    """The three stages' channels of a CIFAR ResNet at ``width_multiplier`` (16/32/64 scaled, rounded as kresnet's builder does)."""
    return [max(1, int(round(f * width_multiplier))) for f in (16, 32, 64)]


def torch_resnet_cifar(torch, depth: int, num_classes: int, width_multiplier: float = 1.0):
    """The CIFAR option-A ResNet of depth 6n+2 as a torch ``nn.Module`` (kresnet's ``resnet{depth}``).

    ``width_multiplier`` scales the three stages' 16/32/64 channels as kresnet's ``width_multiplier`` does.
    """
    widths = cifar_widths(width_multiplier)
    nn, functional = torch.nn, torch.nn.functional

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.stride, self.pad = stride, cout != cin

        def forward(self, x):
            shortcut = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
            if self.pad:  # option A: the new channels are zeros, appended after the input's
                shortcut = torch.cat([shortcut, torch.zeros_like(shortcut)], dim=1)
            y = functional.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return functional.relu(y + shortcut)

    class ResNetCifar(nn.Module):
        def __init__(self):
            super().__init__()
            n = (depth - 2) // 6
            self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(widths[0])
            blocks, cin = [], widths[0]
            for stage, cout in enumerate(widths):
                for block in range(n):
                    blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and block == 0 else 1))
                    cin = cout
            self.blocks = nn.Sequential(*blocks)
            self.fc = nn.Linear(widths[2], num_classes)
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")  # Keras he_normal

        def forward(self, x):
            x = functional.relu(self.bn1(self.conv1(x)))
            x = self.blocks(x)
            return self.fc(torch.flatten(functional.adaptive_avg_pool2d(x, 1), 1))

    return ResNetCifar()


def run_torch(args) -> dict:
    try:
        import torch
    except ImportError:
        raise SystemExit(
            "mode torch needs PyTorch, which is not a kresnet dependency. Install it in a separate venv "
            "(python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch numpy) and pass "
            "--torch-python /tmp/torchvenv/bin/python, or run this script with that interpreter and --modes torch."
        ) from None
    functional = torch.nn.functional

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    depth = cifar_depth(args.model)
    model = torch_resnet_cifar(torch, depth, args.num_classes, args.width_multiplier).to(memory_format=torch.channels_last)
    model.train()
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for name, b in model.named_buffers() if not name.endswith("num_batches_tracked"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    autocast_dtype = {"mixed_bfloat16": torch.bfloat16, "mixed_float16": torch.float16}.get(args.precision)
    scaler = torch.amp.GradScaler("cpu") if args.precision == "mixed_float16" else None

    images_np, labels_np = synthetic_arrays(args)
    images, labels = torch.from_numpy(images_np), torch.from_numpy(labels_np)  # NHWC uint8, int64
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    b = args.batch_size
    times = EpochTimes(EpochGate(parse_gate_fds(args.gate_fds)))
    loss_sum = torch.zeros(())
    for _ in range(args.warmup_epochs + args.epochs):
        times.epoch_begin()
        for step in range(args.steps):
            # NHWC uint8 viewed as NCHW is already channels_last in memory; convert + normalise on the fly.
            x = images[step * b : (step + 1) * b].permute(0, 3, 1, 2).float()
            x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
            y = labels[step * b : (step + 1) * b]
            with torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
                logits = model(x)
            loss = functional.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            loss_sum += loss.detach()
    times.train_end()
    return {**measured(args, times.seconds(), args.steps * b), "backend": f"torch {torch.__version__} (eager, channels_last)",
            "input": "in-memory uint8 tensor", "params": params + buffers, "trainable_params": params,
            "bn_running_stats": buffers, "threads": {"intra_op": torch.get_num_threads()},
            "dtype_policy": args.precision, "mean_loss": float(loss_sum) / max(1, args.steps * (args.warmup_epochs + args.epochs))}


# --------------------------------------------------------------------------- orchestration


def run_worker(args) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.time()
    runner = run_kresnet if args.worker in KRESNET_MODES else {"bare": run_bare, "torch": run_torch}[args.worker]
    result = runner(args)
    if args.worker != "torch":
        from keras_resnet.cpu_kernels import onednn_record

        result["onednn"] = onednn_record()
    result.update(mode=args.worker, repeat=args.repeat, model=args.model, width_multiplier=args.width_multiplier,
                  batch_size=args.batch_size,
                  image_size=args.image_size, precision=args.precision, steps=args.steps,
                  process_seconds=time.time() - started, versions=versions(), python=sys.executable)
    Path(args.result_file).write_text(json.dumps(result, indent=1))


def worker_command(args, mode: str, repeat: int, result_file: Path, data_dir: Path,
                   gate_fds: tuple[int, int] | None = None) -> list[str]:
    python = args.torch_python if mode == "torch" and args.torch_python else sys.executable
    command = [python, str(Path(__file__).resolve()), "--worker", mode, "--repeat", str(repeat),
               "--result-file", str(result_file), "--data-dir", str(data_dir),
               "--model", args.model, "--width-multiplier", repr(args.width_multiplier),
               "--batch-size", str(args.batch_size), "--image-size", str(args.image_size),
               "--precision", args.precision, "--steps", str(args.steps), "--epochs", str(args.epochs),
               "--warmup-epochs", str(args.warmup_epochs), "--repeats", str(args.repeats), "--modes", mode,
               "--backend", args.backend if mode == "bare" else "tensorflow", "--bare-input", args.bare_input,
               "--kresnet-augment", args.kresnet_augment, "--num-classes", str(args.num_classes), "--seed", str(args.seed)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    if gate_fds:
        command += ["--gate-fds", f"{gate_fds[0]},{gate_fds[1]}"]
    return command


def worker_env(args, mode: str) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    if mode in ("bare", *KRESNET_MODES):
        env["KERAS_BACKEND"] = args.backend if mode == "bare" else "tensorflow"
    return env


def read_result(mode: str, repeat: int, returncode: int, result_file: Path) -> dict:
    if returncode != 0 or not result_file.exists():
        raise SystemExit(f"mode {mode} (repeat {repeat}) failed with exit code {returncode}; see its output above")
    return json.loads(result_file.read_text())


class GatedWorker:
    """The orchestrator's side of ``--interleave``: one worker process and its two pipes (see ``EpochGate``)."""

    def __init__(self, name: str, command_for_fds, env: dict | None = None):
        go_read, self._go = os.pipe()
        self._ready, ready_write = os.pipe()
        self.name = name
        self.process = subprocess.Popen(command_for_fds((go_read, ready_write)), env=env, pass_fds=(go_read, ready_write))
        os.close(go_read)
        os.close(ready_write)
        self._ready_file = os.fdopen(self._ready, "r")
        self._go_file = os.fdopen(self._go, "w")

    def next_report(self) -> str:
        """Block until the worker reaches its next gate; its report ('start' or the seconds of the epoch run)."""
        line = self._ready_file.readline().strip()
        if not line:
            code = self.process.wait()
            raise SystemExit(f"--interleave: mode {self.name} stopped (exit code {code}) before its next epoch; see its output above")
        return line

    def go(self) -> None:
        self._go_file.write("go\n")
        self._go_file.flush()

    def close(self) -> None:
        for handle in (self._go_file, self._ready_file):
            try:
                handle.close()
            except OSError:
                pass
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def run_turns(workers: list, epochs: int, log=print) -> list[list[list]]:
    """Let workers waiting at their first gate run ``epochs`` epochs in turns, then release them all.

    In round r the workers go one at a time, in the given order when r is even and reversed when
    odd. Returns each round's reports as ``[[name, seconds], ...]``.
    """
    rounds = []
    for r in range(epochs):
        order = workers if r % 2 == 0 else workers[::-1]
        reports = []
        for worker in order:
            worker.go()
            reports.append([worker.name, float(worker.next_report())])
        rounds.append(reports)
        log(f"[throughput] round {r + 1}/{epochs}: " + "  ".join(f"{name} {seconds:.2f} s" for name, seconds in reports))
    for worker in workers:  # past the end-of-training gate: results are written after every epoch was run
        worker.go()
    return rounds


def run_repeat_interleaved(args, repeat: int, work: Path) -> list[dict]:
    """One repeat of every mode, the processes taking turns epoch by epoch (``--interleave``)."""
    workers, files = [], {}
    try:
        for mode in args.mode_list:  # started one after the other: the first writes the image folder
            files[mode] = work / f"{mode}-{repeat}.json"
            worker = GatedWorker(mode, lambda fds, mode=mode: worker_command(args, mode, repeat, files[mode], work / "images", fds),
                                 env=worker_env(args, mode))
            workers.append(worker)
            first = worker.next_report()  # waiting at its first gate: its start-up overlaps no measured epoch
            if first != "start":
                raise SystemExit(f"--interleave: mode {mode} reported {first!r} before its first epoch")
        run_turns(workers, args.warmup_epochs + args.epochs)
        return [read_result(w.name, repeat, w.process.wait(), files[w.name]) for w in workers]
    finally:
        for worker in workers:
            worker.close()


def machine_info() -> dict:
    try:
        from keras_resnet.cpu_kernels import cpu_model

        cpu = cpu_model()
    except ImportError:  # the torch-only venv (the script run with its interpreter and --modes torch)
        cpu = platform.processor()
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    # Environment that changes which kernels TensorFlow runs (TF_ENABLE_ONEDNN_OPTS: oneDNN or not).
    info["environment"] = {key: os.environ[key] for key in ("TF_ENABLE_ONEDNN_OPTS", "KERAS_BACKEND") if key in os.environ}
    if hasattr(os, "sched_getaffinity"):
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    if hasattr(os, "getloadavg"):
        info["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def describe(result: dict) -> str:
    epochs = " ".join(f"{s:.2f}" for s in result["epoch_seconds"])
    warm = " ".join(f"{s:.1f}" for s in result["warmup_seconds"])
    ends = result.get("epoch_end_seconds")
    ends = f", of which epoch-end callbacks {' '.join(f'{s:.2f}' for s in ends)} s" if ends else ""
    return (f"[throughput] repeat {result['repeat']}  {result['mode']:<15} {result['images_per_second']:9.1f} images/s  "
            f"({result['backend']}, {result['dtype_policy']}, batch {result['batch_size']}, {result['image_size']}px, "
            f"{result['images_per_epoch']} images/epoch; measured epochs {epochs} s{ends}; warm-up {warm} s)")


RATIOS = (("kresnet", "bare"), ("kresnet", "kresnet_unfused"), ("bare", "torch"), ("kresnet", "torch"))


def round_ratios(results: list[dict], top: str, bottom: str) -> list[float]:
    """Per measured epoch of each repeat, the images/s of ``top`` over ``bottom`` (``--interleave``:
    the two epochs ran back to back in the same round)."""
    ratios = []
    for repeat in sorted({r["repeat"] for r in results}):
        upper = next((r for r in results if r["mode"] == top and r["repeat"] == repeat), None)
        lower = next((r for r in results if r["mode"] == bottom and r["repeat"] == repeat), None)
        if upper and lower:
            # Same images per epoch in both modes: the rate ratio is the inverse ratio of the seconds.
            ratios += [b / a for a, b in zip(upper["epoch_seconds"], lower["epoch_seconds"]) if a > 0]
    return ratios


def summarise(results: list[dict], modes: list[str], per_round: bool = False) -> dict:
    """Medians per mode and ratios of the medians; with ``per_round`` also the per-round ratios
    (median, min, max), the robust figure of an interleaved run."""
    summary = {}
    for mode in modes:
        rates = [r["images_per_second"] for r in results if r["mode"] == mode]
        if rates:
            summary[mode] = {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "repeats": len(rates)}
    ratios, per_round_ratios = {}, {}
    for top, bottom in RATIOS:
        if top in summary and bottom in summary:
            ratios[f"{top}/{bottom}"] = summary[top]["median"] / summary[bottom]["median"]
            rounds = round_ratios(results, top, bottom) if per_round else []
            if rounds:
                per_round_ratios[f"{top}/{bottom}"] = {"median": statistics.median(rounds), "min": min(rounds),
                                                       "max": max(rounds), "rounds": len(rounds)}
    out = {"modes": summary, "ratios": ratios}
    if per_round:
        out["round_ratios"] = per_round_ratios
    return out


def print_summary(args, results: list[dict], summary: dict, machine: dict) -> None:
    print(f"\nTraining throughput: {args.model}, batch {args.batch_size}, {args.image_size}x{args.image_size}, {args.precision}, "
          f"{args.steps} steps/epoch, {args.epochs} measured epoch(s) after {args.warmup_epochs} warm-up, "
          f"{args.repeats} repeat(s)")
    print(f"{'mode':<15} {'median img/s':>12} {'min':>9} {'max':>9}  backend / input")
    for mode, row in summary["modes"].items():
        first = next(r for r in results if r["mode"] == mode)
        print(f"{mode:<15} {row['median']:12.1f} {row['min']:9.1f} {row['max']:9.1f}  {first['backend']} / {first['input']}")
    if summary["ratios"]:
        print("ratios of the medians: " + "   ".join(f"{name} {value:.3f}" for name, value in summary["ratios"].items()))
    for name, row in summary.get("round_ratios", {}).items():
        print(f"per-round ratio {name}: median {row['median']:.3f} (min {row['min']:.3f}, max {row['max']:.3f}, {row['rounds']} rounds)")
    counts = []
    for mode in summary["modes"]:
        first = next(r for r in results if r["mode"] == mode)
        extra = f" + {first['bn_running_stats']:,} BN running stats" if "bn_running_stats" in first else ""
        counts.append(f"{mode} {first['params']:,} ({first['trainable_params']:,} trainable{extra})")
    print("parameters: " + "; ".join(counts))
    seen = {}
    for r in results:
        seen.update(r["versions"])
    threads = {r["mode"]: r["threads"] for r in results}
    print(f"machine: {machine['cpu']}, {machine['cpu_count']} CPUs ({machine.get('cpus_usable', '?')} usable), "
          f"{machine['platform']}, Python {machine['python']}; load average {machine.get('load_average_start')} -> "
          f"{machine.get('load_average_end')}" + (f"; environment {machine['environment']}" if machine.get("environment") else ""))
    print("versions: " + ", ".join(f"{k} {v}" for k, v in seen.items()) + f"; threads: {threads}")


def orchestrate(args) -> None:
    machine = machine_info()
    bare = f" (bare on the {args.backend} backend)" if "bare" in args.mode_list else ""
    print(f"[throughput] modes {','.join(args.mode_list)}{bare}; {machine['cpu_count']} CPUs; "
          f"load average {machine.get('load_average_start')}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="train-throughput-"))
    results = []
    try:
        for repeat in range(1, args.repeats + 1):
            if args.interleave:
                repeat_results = run_repeat_interleaved(args, repeat, work)
                for result in repeat_results:
                    print(describe(result), flush=True)
            else:
                repeat_results = []
                for mode in args.mode_list:
                    result_file = work / f"{mode}-{repeat}.json"
                    done = subprocess.run(worker_command(args, mode, repeat, result_file, work / "images"), env=worker_env(args, mode))
                    repeat_results.append(read_result(mode, repeat, done.returncode, result_file))
                    print(describe(repeat_results[-1]), flush=True)
            results += repeat_results
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if hasattr(os, "getloadavg"):
        machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    summary = summarise(results, args.mode_list, per_round=args.interleave)
    print_summary(args, results, summary, machine)
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k not in ("worker", "repeat", "result_file", "data_dir")}
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"settings": settings, "machine": machine, "results": results, "summary": summary}, indent=1))
        print(f"wrote {out}")


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
