"""``kresnet calibrate``: fit a softmax temperature on a run's validation split, write the calibrated model."""

from __future__ import annotations

import click

from keras_resnet.compat import import_tensorflow_quietly


@click.command("calibrate")
@click.argument("run", required=False, metavar="[RUN_DIR|MODEL]")
@click.option("--dataset", help="Use this dataset instead of the run's (same classes).")
@click.option("--data-dir", help="Where that dataset lies (image folder or local copy).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Prediction batch size (default: the run's).")
@click.option("--output", type=click.Path(file_okay=False), help="Folder of the calibrated run (default: RUN/calibrated).")
def calibrate_command(run, dataset, data_dir, batch_size, output) -> None:
    """Temperature-scale a trained model so its confidence can be trusted.

    Fits one temperature T on the validation split (never the test split) by
    minimising the negative log-likelihood of softmax(log(p) / T), prints ECE and NLL
    before and after on validation and test (top-1 does not change), and writes a
    calibrated run folder: model.keras whose softmax includes T (so every export
    format carries it; `kresnet export` gates it like any model), config.yaml,
    labels.txt, preprocessing.json, calibration.json and a before/after reliability
    diagram calibration.png.

    RUN is a run directory or a .keras file inside one (default: the most recent run
    under saved_models/).

    \b
    Examples:
      kresnet calibrate
      kresnet calibrate saved_models/resnet20-cifar10-20250101-120000
      kresnet export saved_models/resnet20-cifar10-20250101-120000/calibrated --format tflite
    """
    import_tensorflow_quietly()
    try:
        from keras_resnet.train.calibration import calibrate_run, format_calibration

        result = calibrate_run(run, dataset=dataset, data_dir=data_dir, batch_size=batch_size, output=output)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(format_calibration(result))
