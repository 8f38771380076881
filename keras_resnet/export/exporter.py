"""Export a trained run to .keras, SavedModel, TFLite or ONNX, gated by a parity check.

Every export is built under a temporary name in the destination folder, run
against the Keras model on held-out images (`keras_resnet.export.parity`), and only
then renamed into place. A failed gate sets the artifact aside as
``<name>.rejected`` (with its report) and raises `ExportParityError`; an interrupted
or failed export (a full disk, a file-size limit) removes its temporary files and
the folders it created, and raises an ``OSError`` naming the path. Either way a
previous good artifact stays put. Temporaries carry their writer's owner tag
(`keras_resnet.runs.owner_tag`): the next export to the same place removes those a
killed export (``kill -9``) left, never a running export's.

Layout (default output under ``<run>/export/``)::

    keras/model.keras + preprocessing.json + labels.txt + parity.json
    savedmodel/        (SavedModel dir; labels.txt, preprocessing.json, parity.json inside)
    tflite_<float32|float16|dynamic|int8>/model.tflite + labels.txt + parity.json
    onnx/model.onnx + labels.txt + parity.json (with ``onnx_opset``)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from keras_resnet import runs
from keras_resnet.export.parity import ExportParityError, ParityReport, compare
from keras_resnet.export.tflite import QUANTIZATIONS, check_quantize

FORMATS = ("keras", "savedmodel", "tflite", "onnx")
PARITY_FILE = "parity.json"
EXPORT_DIR = "export"


@dataclass
class ExportResult:
    """A successful export.

    Attributes:
        path: The artifact (file or SavedModel directory).
        format, quantize: What was exported.
        report: The parity report (also written as ``parity.json``).
        report_path: Where the report was written.
    """

    path: Path
    format: str
    quantize: str
    report: ParityReport
    report_path: Path


def check_format(fmt: str, quantize: str = "none") -> None:
    """Validate a format / quantisation pair before any work starts.

    Raises:
        ValueError: on an unknown format or quantisation, or quantisation for a
            format other than tflite.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}. Received: format={fmt!r}")
    check_quantize(quantize)
    if fmt != "tflite" and quantize != "none":
        raise ValueError(f"Quantisation applies to --format tflite only. Received: format={fmt!r}, quantize={quantize!r}")
    if fmt == "onnx":
        from keras_resnet.export.onnx import require

        require()  # onnx, tf2onnx, onnxruntime, or an error naming `pip install "kresnet[onnx]"`


def default_output(run_dir: str | os.PathLike, fmt: str, quantize: str = "none") -> Path:
    """Where an export goes when no output is named (see the module docstring)."""
    root = Path(run_dir) / EXPORT_DIR
    if fmt == "keras":
        return root / "keras" / runs.MODEL_FILE
    if fmt == "savedmodel":
        return root / "savedmodel"
    if fmt == "onnx":
        return root / "onnx" / "model.onnx"
    return root / f"tflite_{'float32' if quantize == 'none' else quantize}" / "model.tflite"


def _check_output(output: Path, fmt: str) -> None:
    wanted = {"keras": ".keras", "tflite": ".tflite", "onnx": ".onnx"}.get(fmt)
    if wanted and output.suffix != wanted:
        raise ValueError(f"A {fmt} export must be written to a '{wanted}' file. Received: output={str(output)!r}")
    if fmt == "savedmodel" and output.exists() and not output.is_dir():
        raise ValueError(f"A SavedModel is a directory, but {output} is a file.")


def rejected_path(output: Path) -> Path:
    """Where a rejected artifact is set aside: ``<name>.rejected`` beside it."""
    return output.with_name(output.name + ".rejected")


@contextlib.contextmanager
def _staged_directory(output: Path):
    """Like `runs.atomic_path` for a directory: yield a temp dir beside ``output``, swap it in on success."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tag = runs.owner_tag()
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.{tag}.", suffix=".tmp", dir=output.parent))
    tmp.rmdir()  # the writer creates it
    try:
        yield tmp
        if output.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{output.name}.{tag}.", suffix=".old", dir=output.parent))
            os.replace(output, old / output.name)
            os.replace(tmp, output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, output)
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        located = runs.disk_error(error, output) if isinstance(error, Exception) else None
        if located is not None and located is not error:
            raise located from error  # TensorFlow's "...; No space left on device" as an OSError naming the output
        raise


def stale_temporary_patterns(output: Path) -> tuple[str, ...]:
    """Globs (in ``output``'s folder) of the temporaries an export to ``output`` and its side files make."""
    return (f".{output.stem}.*.tmp{output.suffix}", f".{output.name}.*.tmp", f".{output.name}.*.old",
            f".{Path(runs.LABELS_FILE).stem}.*.tmp.txt", f".{Path(PARITY_FILE).stem}.*.tmp.json",
            f".{Path(runs.PREPROCESSING_FILE).stem}.*.tmp.json")


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the ones created, deepest first (to remove on failure)."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _remove_if_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            break  # not empty (another export's files) or already gone


def _staged(output: Path, fmt: str):
    return _staged_directory(output) if fmt == "savedmodel" else runs.atomic_path(output)


def _set_aside(tmp: Path, output: Path) -> Path:
    target = rejected_path(output)
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    os.replace(tmp, target)
    return target


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def _save_keras(model, path: Path) -> None:
    """The ``.keras`` artifact: the run's model as it is (raw pixels in, preprocessing inside)."""
    model.save(path)


def _build(source, fmt: str, quantize: str, tmp: Path, top_k: int, calibration) -> None:
    """Write the artifact to ``tmp`` (a SavedModel also gets its labels/preprocessing inside)."""
    if fmt == "keras":
        _save_keras(source.model, tmp)
        runs.write_model_metadata(tmp, {"labels": list(source.labels), "preprocessing": source.spec})
    elif fmt == "savedmodel":
        from keras_resnet.data.preprocess import save_preprocessing
        from keras_resnet.export.serving import write_savedmodel

        write_savedmodel(source.model, source.image_size, source.labels, tmp, top_k)
        runs.write_labels(tmp, source.labels)
        save_preprocessing(tmp, source.spec)
    elif fmt == "onnx":
        from keras_resnet.export.onnx import write_onnx

        write_onnx(source.model, tmp, source.image_size, labels=source.labels, spec=source.spec)
    else:
        from keras_resnet.export.tflite import convert_to_tflite

        representative = None if calibration is None else (lambda: iter(calibration))
        tmp.write_bytes(convert_to_tflite(source.model, source.image_size, source.labels, quantize, representative))


def _artifact_runner(source, fmt: str, tmp: Path):
    from keras_resnet.export import runners

    if fmt == "keras":
        import keras

        model = keras.saving.load_model(tmp, compile=False)
        return runners.KerasRunner(model, source.labels, tmp)
    if fmt == "savedmodel":
        return runners.SavedModelRunner(tmp, source.labels)
    if fmt == "onnx":
        return runners.OnnxRunner(tmp, source.labels)
    return runners.TFLiteRunner(tmp, source.labels)


def _report_json(report: ParityReport, fmt: str) -> dict:
    """``parity.json``'s content: the report, plus the opset for an ONNX artifact."""
    data = report.to_dict()
    if fmt == "onnx":
        from keras_resnet.export.onnx import OPSET

        data["onnx_opset"] = OPSET
    return data


def gate(source, artifact_runner, images, labels, fmt: str, quantize: str, batch_size: int = 64) -> ParityReport:
    """Run the Keras model and the artifact on the same images and compare.

    Args:
        source: The `keras_resnet.runs.Run` (its model, taking raw pixels, is the reference).
        artifact_runner: A `Runner` for the exported artifact.
        images: uint8 images [H, W, 3] (resized on the host first if the artifact
            needs a fixed size, and the Keras model then sees the same pixels).
        labels: Class indices or None.
        fmt, quantize: Pick the threshold.
        batch_size: Images per call.

    Returns:
        The `ParityReport` (not raised on: see ``report.passed``).
    """
    from keras_resnet.export.runners import KerasRunner

    inputs = [artifact_runner.fit_input(img) for img in images]
    reference = KerasRunner(source.model, source.labels, source.model_path)
    keras_probs = reference.predict_many(inputs, batch_size)
    artifact_probs = artifact_runner.predict_many(inputs, batch_size)
    return compare(keras_probs, artifact_probs, labels, fmt, quantize)


def export_model(
    model: str | os.PathLike | None = None,
    fmt: str = "savedmodel",
    quantize: str = "none",
    output: str | os.PathLike | None = None,
    parity_samples: int = 256,
    representative_samples: int = 256,
    images: str | os.PathLike | None = None,
    calibration_images: str | os.PathLike | None = None,
    top_k: int = 5,
    runs_root: str | os.PathLike = runs.DEFAULT_RUNS_ROOT,
) -> ExportResult:
    """Export a run's model, check it against the Keras model, and put it in place.

    Args:
        model: Run directory, ``.keras`` file (in a run or on its own; see
            `keras_resnet.runs.load_run`), or None for the latest run.
        fmt: "keras", "savedmodel", "tflite" or "onnx".
        quantize: For tflite: "none", "float16", "dynamic" or "int8".
        output: Artifact path (default: `default_output`). ``.keras``/``.tflite``
            files get ``labels.txt`` and ``parity.json`` in their folder; a
            SavedModel directory holds them inside.
        parity_samples: Held-out images for the parity gate.
        representative_samples: Training images to calibrate int8.
        images: Folder of held-out images (``<class>/*`` gives labels) instead of
            the run's test split.
        calibration_images: Folder of training images for int8 calibration
            instead of the run's training split.
        top_k: Classes in the SavedModel's ``top_k_*`` outputs.
        runs_root: Where the latest run is looked for when ``model`` is None.

    Returns:
        An `ExportResult`.

    Raises:
        ValueError / FileNotFoundError: bad arguments or missing files (before any conversion).
        ExportParityError: the artifact failed the gate; it was renamed to
            ``<name>.rejected`` and any previous artifact at ``output`` is untouched.
        OSError: naming the path, when the output folder is not writable (checked
            before the conversion), the disk is full or a file-size limit is hit;
            temporaries and the folders this export created are removed.

    Example:
        >>> export_model("saved_models/run1", "tflite", "int8")
    """
    check_format(fmt, quantize)
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1. Received: top_k={top_k!r}")
    source = runs.load_run(model, runs_root)
    output = Path(output) if output is not None else default_output(source.run_dir, fmt, quantize)
    _check_output(output, fmt)
    if fmt == "tflite":
        from keras_resnet.export.tflite import remove_stale_conversion_folders

        remove_stale_conversion_folders()
    created = []
    try:
        created = _make_folder(output.parent)
        runs.remove_stale_temporaries(output.parent, stale_temporary_patterns(output))
        runs.check_writable_folder(output.parent, "export")  # a read-only place fails here, before the conversion
        return _export(source, fmt, quantize, output, parity_samples, representative_samples, images,
                       calibration_images, top_k)
    except BaseException:
        _remove_if_empty(created)  # no empty format folder left behind by a failed export
        raise


def _export(source, fmt, quantize, output: Path, parity_samples, representative_samples, images, calibration_images,
            top_k) -> ExportResult:
    from keras_resnet.export import sources

    held_out, labels, where = sources.heldout_images(source, parity_samples, images)
    calibration = None
    if quantize == "int8":
        from keras_resnet.export.runners import fit_to_size

        calibration = [
            fit_to_size(img, source.image_size)
            for img in sources.calibration_images(source, representative_samples, calibration_images)
        ]

    report_dir = output if fmt == "savedmodel" else output.parent
    with _staged(output, fmt) as tmp:
        _build(source, fmt, quantize, tmp, top_k, calibration)
        report = gate(source, _artifact_runner(source, fmt, tmp), held_out, labels, fmt, quantize)
        report.artifact, report.images, report.size_bytes = str(output), where, _size(tmp)
        if not report.passed:
            aside = _set_aside(tmp, output)
            report_file = aside / PARITY_FILE if aside.is_dir() else aside.with_name(aside.name + ".parity.json")
            runs.atomic_write_json(report_file, _report_json(report, fmt))
            raise ExportParityError(report, aside)
        if fmt == "savedmodel":
            runs.atomic_write_json(tmp / PARITY_FILE, _report_json(report, fmt))
    if fmt != "savedmodel":
        runs.write_labels(report_dir, source.labels)
        if fmt == "keras":
            from keras_resnet.data.preprocess import save_preprocessing

            save_preprocessing(report_dir, source.spec)
        runs.atomic_write_json(report_dir / PARITY_FILE, _report_json(report, fmt))
    return ExportResult(output, fmt, quantize, report, report_dir / PARITY_FILE)


__all__ = ["FORMATS", "QUANTIZATIONS", "ExportParityError", "ExportResult", "check_format", "default_output", "export_model", "gate"]
