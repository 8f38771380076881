"""``kresnet evaluate``: metrics of a trained run (default: the latest) on a split."""

from __future__ import annotations

import click

from keras_resnet.compat import import_tensorflow_quietly
from keras_resnet.config import TTA, EvalSplit, choices


@click.command("evaluate")
@click.argument("run", required=False, metavar="[RUN_DIR|MODEL]")
@click.option("--dataset", help="Evaluate on this dataset instead of the run's (same classes).")
@click.option("--data-dir", help="Where that dataset lies (image folder or local copy).")
@click.option("--split", type=click.Choice(choices(EvalSplit)), default="test", show_default=True)
@click.option("--batch-size", type=int, help="Evaluation batch size (default: the run's).")
@click.option("--top-losses", type=click.IntRange(min=0), default=16, show_default=True,
              help="Highest-loss images in top_losses.png / top_losses.csv (0: none).")
@click.option("--tta", type=click.Choice(choices(TTA)), default="none", show_default=True,
              help="Test-time augmentation reported beside the plain figures: flip = mean of the "
                   "probabilities on each image and its mirror image.")
@click.option("--no-write", is_flag=True, help="Only print; do not write metrics.json or the plots.")
def evaluate_command(run, dataset, data_dir, split, batch_size, top_losses, tta, no_write) -> None:
    """Evaluate a trained model: loss, top-1, top-5, per-class precision/recall/F1, confusion matrix.

    RUN is a run directory or a .keras file (default: the most recent run under
    saved_models/). The model normalises its input itself, so only the evaluated
    split is read (with the run's data config, or --dataset/--data-dir, which a
    .keras file without its run needs). Writes metrics.json (with expected
    calibration error and NLL), confusion_matrix.png, calibration.png (reliability
    diagram) and top_losses.png / top_losses.csv (the highest-loss images, with their
    paths) beside the model.

    --tta flip also predicts each image's mirror image in the same pass and reports
    the mean of the two (a "TTA flip:" line, and a "tta" section in metrics.json)
    beside the plain figures, which stay as they are.

    \b
    Examples:
      kresnet evaluate
      kresnet evaluate saved_models/resnet20-cifar10-20250101-120000
      kresnet evaluate saved_models/run/best.keras --split val
      kresnet evaluate saved_models/run --tta flip
      kresnet evaluate saved_models/run --data-dir ../shared/datasets/cifar10
    """
    import_tensorflow_quietly()
    from keras_resnet.train.evaluate import EvaluationNotWrittenError, evaluate_run, format_report

    def report(metrics):
        return format_report(metrics, title=f"{metrics['model']} on the {split} split of {metrics['dataset']}")

    try:  # other errors: the group's boundary
        metrics = evaluate_run(run, dataset=dataset, data_dir=data_dir, split=split, batch_size=batch_size,
                               write=not no_write, top_losses=top_losses, tta=tta)
    except EvaluationNotWrittenError as error:  # a read-only run: the metrics first, then why they were not saved
        click.echo(report(error.metrics))
        raise error.cause from None
    click.echo(report(metrics))
