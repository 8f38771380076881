"""``kresnet predict``: classify image files with a run, .keras, SavedModel or .tflite model."""

from __future__ import annotations

import click


@click.command("predict")
@click.argument("model", type=click.Path(exists=True))
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True, help="Classes per image.")
@click.option("--format", "fmt", type=click.Choice(("table", "json", "csv")), default="table", show_default=True, help="Output format.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Images per model call.")
def predict_command(model, images, top_k, fmt, batch_size):
    """Classify IMAGES (files and/or directories, searched recursively) with MODEL.

    MODEL is a run directory, a .keras file (preprocessing.json and labels.txt
    beside it), an exported SavedModel directory or a .tflite file (run on the
    LiteRT interpreter; labels.txt beside it). An unreadable image is reported by
    path (stderr; also an 'error' row in json/csv) and the rest go on. Exit
    status: 0 when at least one image was classified, 1 when none could be.

    \b
    Examples:
      kresnet predict saved_models/run1 cat.jpg dog.png
      kresnet predict export/tflite_int8/model.tflite photos/ --top-k 3 --format csv
      kresnet predict export/savedmodel photos/ --format json --batch-size 64
    """
    from keras_resnet.export.predict import format_predictions, predict_files
    from keras_resnet.export.runners import load_runner

    try:
        runner = load_runner(model)
        predictions = predict_files(runner, images, top_k, batch_size)
    except (ValueError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    for p in predictions:
        if not p.ok:
            click.echo(f"error: {p.error}", err=True)
    text = format_predictions(predictions, fmt)
    if text:
        click.echo(text)
    done = sum(p.ok for p in predictions)
    if not predictions:
        raise click.ClickException(f"No image files found in {', '.join(images)}.")
    if done == 0:
        raise click.ClickException(f"None of the {len(predictions)} images could be classified.")
