"""Export formats compared: file size, CPU latency/throughput and CIFAR-10 accuracy.

For a trained CIFAR-10 ResNet-20 (``--run-dir``; without one a quick run is trained
here with ``model.fit`` on a subset of ``--data-dir``) every format goes through
`keras_resnet.export.export_model` (so through the parity gate) and is then timed:
Keras (the ``.keras`` run model, eager call as ``kresnet predict`` runs it, and the
same call compiled with ``tf.function``), SavedModel (``serving_default``), TFLite
float32 / float16 / dynamic-range / int8 on the LiteRT interpreter, and ONNX (opset
17, float32) on onnxruntime (needs ``pip install "kresnet[onnx]"``). All take raw
uint8 pixels and include the preprocessing, so every row measures the same work.

ResNet-50 at 224x224 (random weights, 1000 classes) is converted with the same
library functions but without the gate (random weights give near-uniform outputs,
so agreement and accuracy mean nothing there): size and speed only.

Targets (issue 6): int8 ResNet-20 <= 0.4 MB and within 1 point of float accuracy;
TFLite float32 batch-1 latency no worse than Keras'.

Example:
    python benchmarks/export.py --data-dir ../shared/datasets/cifar10 --test-images 2000
    python benchmarks/export.py --run-dir saved_models/resnet20-cifar10-... --test-images 10000
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def train_quick_run(data_dir: str, run_dir: Path, train_images: int, epochs: int, seed: int = 0) -> Path:
    """Fit a CIFAR-10 ResNet-20 on a subset with ``model.fit`` and save it as a run directory.

    The run gets model.keras, labels.txt, preprocessing.json ("dataset" mean/std of the
    subset) and a config.yaml whose data section points at ``data_dir`` (image folder),
    so the export's parity gate and int8 calibration use the data module's splits.
    """
    import keras
    import tensorflow as tf

    from keras_resnet import build_resnet
    from keras_resnet.data import DataConfig
    from keras_resnet.data.preprocess import make_spec, save_preprocessing
    from keras_resnet.data.sources import resolve_source
    from keras_resnet.runs import atomic_save_model, write_labels
    from keras_resnet.train.config import TrainConfig, save_config

    config = TrainConfig()
    config.data = DataConfig(dataset=None, data_dir=str(data_dir), image_size=32)
    class_names = list(resolve_source(None, str(data_dir)).class_names)
    from keras_resnet.data.pipeline import inference_images

    ds = inference_images(config.data, split="train", count=train_images, seed=seed)
    xs, ys = [], []
    for x, y in ds.batch(1024):
        xs.append(x.numpy())
        ys.append(y.numpy())
    x, y = np.concatenate(xs), np.concatenate(ys)
    spec = make_spec("dataset", (32, 32), x.reshape(-1, 3).mean(0), x.reshape(-1, 3).std(0))

    keras.utils.set_random_seed(seed)
    model = build_resnet("resnet20", num_classes=len(class_names), include_preprocessing=True, preprocessing=spec)
    steps = epochs * (len(x) // 128)
    schedule = keras.optimizers.schedules.CosineDecay(0.1, steps, warmup_target=None)
    model.compile(keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True), "sparse_categorical_crossentropy", metrics=["accuracy"])
    flip = keras.layers.RandomFlip("horizontal", seed=seed)
    train = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=seed)
        .batch(128, drop_remainder=True)
        .map(lambda a, b: (flip(tf.cast(a, tf.float32), training=True), b))  # raw pixels: the model normalises
        .prefetch(2)
    )
    start = time.perf_counter()
    model.fit(train, epochs=epochs, verbose=2)
    print(f"trained ResNet-20 on {len(x)} images x {epochs} epochs in {time.perf_counter() - start:.0f} s")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_save_model(model, run_dir / "model.keras", metadata={"labels": class_names, "preprocessing": spec})
    write_labels(run_dir, class_names)
    save_preprocessing(run_dir, spec)
    save_config(config, run_dir / "config.yaml")
    return run_dir


def latency_ms(runner, image: np.ndarray, repeats: int) -> float:
    """Median batch-1 latency in milliseconds (after two warm-up calls)."""
    batch = image[np.newaxis]
    for _ in range(2):
        runner.predict(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner.predict(batch)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def throughput(runner, images: np.ndarray, batches: int) -> float:
    """Images per second at the batch size of ``images`` (after one warm-up batch)."""
    runner.predict(images)
    start = time.perf_counter()
    for _ in range(batches):
        runner.predict(images)
    return batches * len(images) / (time.perf_counter() - start)


class CompiledKerasRunner:
    """The Keras model (it carries its preprocessing) under ``tf.function`` (Keras' fastest call path)."""

    kind = "keras-tf.function"

    def __init__(self, keras_runner):
        import tensorflow as tf

        from keras_resnet.data.preprocess import resize_for_eval

        model, size = keras_runner.model, keras_runner.model_size
        self.labels = keras_runner.labels
        self._fn = tf.function(
            lambda images: model(resize_for_eval(images, size), training=False),
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)],
        )

    def predict(self, images):
        return self._fn(images).numpy()


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def table(rows: list[dict], columns: list[str]) -> str:
    """Aligned text table."""
    cells = [columns] + [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells)


def bench_cifar(args) -> list[dict]:
    from keras_resnet.export import ExportParityError, export_model
    from keras_resnet.export.runners import OnnxRunner, SavedModelRunner, TFLiteRunner, load_keras_runner
    from keras_resnet.export.sources import collect_images
    from keras_resnet.runs import load_run

    run_dir = Path(args.run_dir) if args.run_dir else train_quick_run(
        args.data_dir, Path(args.work_dir) / "resnet20-cifar10", args.train_images, args.epochs
    )
    from keras_resnet.data.pipeline import inference_images

    images, labels = collect_images(inference_images(load_run(run_dir).data_config(), "test", count=args.test_images), args.test_images)
    images, labels = np.stack(images), np.asarray(labels)
    print(f"CIFAR-10 test images: {len(images)}")
    keras_runner = load_keras_runner(run_dir)
    entries = [
        ("keras (eager)", keras_runner, run_dir / "model.keras"),
        ("keras (tf.function)", CompiledKerasRunner(keras_runner), run_dir / "model.keras"),
    ]
    formats = (
        ("savedmodel", "none"), ("tflite", "none"), ("tflite", "float16"), ("tflite", "dynamic"), ("tflite", "int8"), ("onnx", "none"),
    )
    for fmt, quantize in formats:
        start = time.perf_counter()
        tflite_name = f"tflite {'fp32' if quantize == 'none' else quantize}"
        name = {"savedmodel": "savedmodel", "onnx": "onnx (onnxruntime)"}.get(fmt, tflite_name)
        try:
            result = export_model(run_dir, fmt, quantize, parity_samples=args.parity_samples,
                                  representative_samples=args.representative_samples)
            r, path, verdict = result.report, result.path, "gate passed"
        except ExportParityError as err:  # still measured, and marked, so the table shows what was rejected
            r, path, verdict = err.report, err.rejected_path, "GATE REJECTED"
            name += " (rejected)"
        print(
            f"export {fmt}/{quantize}: {time.perf_counter() - start:.1f} s, {verdict}: agreement {r.top1_agreement:.2%}, "
            f"max diff {r.max_abs_prob_diff:.2g}, acc keras {r.keras_accuracy:.2%} / export {r.artifact_accuracy:.2%} on {r.samples}"
        )
        kind = {"savedmodel": SavedModelRunner, "onnx": OnnxRunner}.get(fmt, TFLiteRunner)
        entries.append((name, kind(path, keras_runner.labels), path))
    rows = []
    batch64 = images[:64]
    for name, runner, path in entries:
        probs = np.concatenate([runner.predict(images[i : i + 64]) for i in range(0, len(images), 64)])
        rows.append(
            {
                "model": f"resnet20 {name}",
                "size_MB": f"{size_of(path) / 1e6:.3f}",
                "b1_latency_ms": f"{latency_ms(runner, images[0], args.repeats):.2f}",
                "b64_img_per_s": f"{throughput(runner, batch64, args.batches):.0f}",
                "accuracy": f"{(probs.argmax(1) == labels).mean():.2%}",
            }
        )
        print(table(rows[-1:], list(rows[-1])).splitlines()[-1])
    return rows


def bench_resnet50(args) -> list[dict]:
    import keras

    from keras_resnet import build_resnet
    from keras_resnet.export.runners import KerasRunner, SavedModelRunner, TFLiteRunner
    from keras_resnet.export.serving import write_savedmodel
    from keras_resnet.export.tflite import convert_to_tflite

    keras.utils.set_random_seed(0)
    model = build_resnet("resnet50", num_classes=1000, include_preprocessing=True, preprocessing="caffe")
    labels = [f"class_{i}" for i in range(1000)]
    work = Path(args.work_dir) / "resnet50"
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 224, 224, 3), dtype=np.uint8)
    model.save(work / "model.keras")
    keras_runner = KerasRunner(model, labels, work / "model.keras")
    entries = [
        ("keras (eager)", keras_runner, work / "model.keras"),
        ("keras (tf.function)", CompiledKerasRunner(keras_runner), work / "model.keras"),
    ]
    write_savedmodel(model, (224, 224), labels, work / "savedmodel")
    entries.append(("savedmodel", SavedModelRunner(work / "savedmodel", labels), work / "savedmodel"))
    for quantize in ("none", "float16", "dynamic", "int8"):
        start = time.perf_counter()
        calibration = list(images[: args.r50_calibration]) if quantize == "int8" else None
        data = convert_to_tflite(model, (224, 224), labels, quantize, (lambda: iter(calibration)) if calibration else None)
        path = work / f"model_{quantize}.tflite"
        path.write_bytes(data)
        print(f"convert resnet50 tflite/{quantize}: {time.perf_counter() - start:.1f} s")
        entries.append((f"tflite {'fp32' if quantize == 'none' else quantize}", TFLiteRunner(path, labels), path))
    from keras_resnet.export.onnx import write_onnx
    from keras_resnet.export.runners import OnnxRunner

    start = time.perf_counter()
    write_onnx(model, work / "model.onnx", (224, 224), labels)
    print(f"convert resnet50 onnx: {time.perf_counter() - start:.1f} s")
    entries.append(("onnx (onnxruntime)", OnnxRunner(work / "model.onnx", labels), work / "model.onnx"))
    rows = []
    for name, runner, path in entries:
        rows.append(
            {
                "model": f"resnet50 {name}",
                "size_MB": f"{size_of(path) / 1e6:.1f}",
                "b1_latency_ms": f"{latency_ms(runner, images[0], args.r50_repeats):.1f}",
                "b64_img_per_s": f"{throughput(runner, images, 1):.1f}",
                "accuracy": "n/a (random weights)",
            }
        )
        print(table(rows[-1:], list(rows[-1])).splitlines()[-1])
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", help="Trained CIFAR-10 ResNet-20 run (with config.yaml); default: train a quick one.")
    parser.add_argument("--data-dir", default="../shared/datasets/cifar10", help="CIFAR-10 image folder (train/, test/).")
    parser.add_argument("--train-images", type=int, default=6000, help="Training subset for the quick run.")
    parser.add_argument("--epochs", type=int, default=2, help="Epochs for the quick run.")
    parser.add_argument("--test-images", type=int, default=2000, help="Test images for accuracy (10000 = all).")
    parser.add_argument("--parity-samples", type=int, default=256)
    parser.add_argument("--representative-samples", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=50, help="Batch-1 calls timed per ResNet-20 format.")
    parser.add_argument("--batches", type=int, default=5, help="Batch-64 calls timed per ResNet-20 format.")
    parser.add_argument("--r50-repeats", type=int, default=10, help="Batch-1 calls timed per ResNet-50 format.")
    parser.add_argument("--r50-calibration", type=int, default=16, help="Calibration images for ResNet-50 int8.")
    parser.add_argument("--skip-resnet50", action="store_true")
    parser.add_argument("--work-dir", default=None, help="Where the quick run and ResNet-50 artifacts go (default: a temp dir).")
    args = parser.parse_args(argv)
    args.work_dir = args.work_dir or tempfile.mkdtemp(prefix="kresnet-bench-export-")

    import tensorflow as tf

    print(f"date {datetime.date.today()}  machine {platform.machine()} {os.cpu_count()} CPU cores  tensorflow {tf.__version__}")
    start = time.perf_counter()
    rows = bench_cifar(args)
    if not args.skip_resnet50:
        rows += bench_resnet50(args)
    print()
    print(table(rows, ["model", "size_MB", "b1_latency_ms", "b64_img_per_s", "accuracy"]))
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
