"""``kresnet predict``: classify image files with a run, .keras, SavedModel, .tflite or .onnx model."""

from __future__ import annotations

import click

from keras_resnet.compat import import_tensorflow_quietly
from keras_resnet.config import PredictFormat, choices
from keras_resnet.textsafe import printable


@click.command("predict")
@click.argument("model", type=click.Path(exists=True))
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True, help="Classes per image.")
@click.option("--format", "fmt", type=click.Choice(choices(PredictFormat)), default="table", show_default=True, help="Output format.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Images per model call.")
@click.option("--explain", "explain_dir", type=click.Path(file_okay=False), default=None,
              help="Write a Grad-CAM heat map over each image into this folder (Keras models only).")
@click.option("--explain-class", default=None, metavar="NAME",
              help="With --explain: the class to explain for every image (default: each image's predicted class).")
def predict_command(model, images, top_k, fmt, batch_size, explain_dir, explain_class):
    """Classify IMAGES (files and/or directories, searched recursively) with MODEL.

    MODEL is a run directory, a .keras file (preprocessing.json and labels.txt
    beside it), an exported SavedModel directory, a .tflite file (run on the
    LiteRT interpreter) or a .onnx file (run on onnxruntime; needs
    `pip install "kresnet[onnx]"`), labels.txt beside them. An unreadable image is reported by
    path (stderr; also an 'error' row in json/csv) and the rest go on. Exit
    status: 0 when at least one image was classified, 1 when none could be.

    \b
    Examples:
      kresnet predict saved_models/run1 cat.jpg dog.png
      kresnet predict export/tflite_int8/model.tflite photos/ --top-k 3 --format csv
      kresnet predict export/savedmodel photos/ --format json --batch-size 64
      kresnet predict export/onnx/model.onnx cat.jpg
      kresnet predict saved_models/run1 cat.jpg --explain gradcam/
      kresnet predict saved_models/run1 photos/ --explain gradcam/ --explain-class dog

    Load only models you trust. A SavedModel is a program: loading and running
    it runs its TensorFlow graph, which can read and write files. .keras files
    are loaded in Keras' safe mode (no Lambda code); SavedModels cannot be
    checked that way. A SavedModel without the files `kresnet export` writes
    into it (parity.json, preprocessing.json) gets a one-line notice on stderr.

    Images whose header declares more pixels than 89,478,485 (Pillow's limit)
    are refused before decoding; KRESNET_MAX_IMAGE_PIXELS=N changes the limit
    (0: none).

    --explain OUT_DIR writes OUT_DIR/<image>.gradcam.png: the image beside the image
    with a Grad-CAM heat map of the predicted class (or --explain-class NAME) over it,
    from the model's last convolutional stage. It needs a run directory or a .keras
    file: SavedModel, TFLite and ONNX models have no gradients to explain with.
    """
    if explain_class is not None and explain_dir is None:
        raise click.UsageError("--explain-class needs --explain OUT_DIR.")
    import_tensorflow_quietly()
    from keras_resnet.export.predict import (
        check_explainable,
        explain_files,
        format_predictions,
        predict_files,
    )
    from keras_resnet.export.runners import load_runner

    try:
        if explain_dir is not None:
            check_explainable(model)
        runner = load_runner(model)
        predictions = predict_files(runner, images, top_k, batch_size)
        explained = explain_files(runner, predictions, explain_dir, explain_class) if explain_dir is not None else []
    except (ValueError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    for p in predictions:
        if not p.ok:
            click.echo(f"error: {printable(p.error)}", err=True)
    text = format_predictions(predictions, fmt)
    if text:
        click.echo(text)
    if explained:
        click.echo(f"Grad-CAM: wrote {len(explained)} image(s) to {explain_dir}", err=True)
    done = sum(p.ok for p in predictions)
    if not predictions:
        raise click.ClickException(f"No image files found in {', '.join(images)}.")
    if done == 0:
        raise click.ClickException(f"None of the {len(predictions)} images could be classified.")
