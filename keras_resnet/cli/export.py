"""``kresnet export``: write a run's model as .keras, SavedModel, TFLite or ONNX, behind the parity gate."""

from __future__ import annotations

import click

from keras_resnet.compat import import_tensorflow_quietly
from keras_resnet.config import ExportFormat, Quantization, choices

FORMATS = choices(ExportFormat)
QUANTIZATIONS = choices(Quantization)


def _percent(value) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def format_report(report) -> str:
    """One-paragraph summary of a `ParityReport` for the terminal."""
    return (
        f"parity on {report.samples} images ({report.images}): "
        f"top-1 agreement {_percent(report.top1_agreement)}, max |prob diff| {report.max_abs_prob_diff:.3g}, "
        f"accuracy keras {_percent(report.keras_accuracy)} / export {_percent(report.artifact_accuracy)}"
    )


@click.command("export")
@click.argument("model", required=False, type=click.Path(exists=True))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="savedmodel", show_default=True, help="Artifact kind.")
@click.option("--quantize", type=click.Choice(QUANTIZATIONS), default="none", show_default=True, help="TFLite quantisation.")
@click.option("-o", "--output", type=click.Path(), default=None, help="Artifact path [default: RUN/export/<format>...].")
@click.option("--parity-samples", type=click.IntRange(min=1), default=256, show_default=True,
              help="Held-out images for the parity gate.")
@click.option("--representative-samples", type=click.IntRange(min=1), default=256, show_default=True,
              help="Training images to calibrate int8.")
@click.option("--images", type=click.Path(exists=True, file_okay=False), default=None,
              help="Held-out image folder (<class>/* gives labels) instead of the run's test split.")
@click.option("--calibration-images", type=click.Path(exists=True, file_okay=False), default=None,
              help="Image folder for int8 calibration instead of the run's training split.")
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True, help="Classes in the SavedModel's top_k outputs.")
@click.option("--runs-root", type=click.Path(), default="saved_models", show_default=True,
              help="Where the latest run is found when MODEL is omitted.")
def export_command(model, fmt, quantize, output, parity_samples, representative_samples, images, calibration_images, top_k, runs_root):
    """Export MODEL (a run directory or .keras file; default: the latest run) and gate it.

    The artifact takes raw RGB uint8 pixels (SavedModel: any size, plus a
    'serve_bytes' signature for JPEG/PNG bytes; TFLite and ONNX: the model's
    size) and applies the training preprocessing itself; labels.txt goes
    alongside. ONNX (opset 17, run on onnxruntime by the gate) needs
    `pip install "kresnet[onnx]"`. It is
    built under a temporary name, compared with the Keras model on held-out
    images (parity.json), and only then moved into place. Thresholds: float32
    >= 99.5% top-1 agreement and max |prob diff| <= 1e-4; float16/dynamic >= 99%
    agreement; int8 accuracy at most 1 point below Keras'. A failing artifact is
    renamed <name>.rejected and the command exits with status 1.

    \b
    Examples:
      kresnet export --format tflite
      kresnet export saved_models/run1 --format savedmodel
      kresnet export saved_models/run1 --format tflite --quantize int8 --representative-samples 500
      kresnet export run1/model.keras --format tflite --images held_out/ -o model.tflite
      kresnet export saved_models/run1 --format onnx
    """
    import_tensorflow_quietly()
    from keras_resnet.export import ExportParityError, export_model

    try:
        result = export_model(
            model,
            fmt,
            quantize,
            output,
            parity_samples=parity_samples,
            representative_samples=representative_samples,
            images=images,
            calibration_images=calibration_images,
            top_k=top_k,
            runs_root=runs_root,
        )
    except ExportParityError as err:
        click.echo(format_report(err.report), err=True)
        raise click.ClickException(str(err)) from None
    click.echo(format_report(result.report))
    click.echo(f"wrote {result.path} ({result.report.size_bytes / 1e6:.2f} MB; report {result.report_path})")
