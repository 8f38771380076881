"""``kresnet convert-weights``: a torchvision/timm ResNet-18/34 checkpoint -> kresnet weights."""

from __future__ import annotations

import click

#: Same as `keras_resnet.models.weights.CONVERTIBLE_MODELS` (not imported: it loads Keras).
CONVERTIBLE_MODELS = ("resnet18", "resnet34")


@click.command("convert-weights")
@click.argument("model", type=click.Choice(CONVERTIBLE_MODELS))
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Output .weights.h5 file. Default: the Keras cache path where "
    "build_resnet(MODEL, weights='imagenet') looks ($KERAS_HOME/models/kresnet/MODEL_imagenet.weights.h5).",
)
def convert_weights_command(model: str, checkpoint: str, output: str | None) -> None:
    """Convert a torchvision or timm ResNet-18/34 CHECKPOINT into kresnet weights.

    CHECKPOINT is a .safetensors file (needs only the safetensors package) or a
    .pth file (needs torch). Convolution kernels are transposed to Keras' layout,
    BatchNorm statistics and the 1000-class fc layer are kept.

    \b
    Examples:
      kresnet convert-weights resnet18 model.safetensors
      kresnet convert-weights resnet34 resnet34-b627a593.pth -o resnet34_imagenet.weights.h5
    """
    from keras_resnet.models.weights import convert_weights

    try:
        path = convert_weights(model, checkpoint, output)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Wrote {path}")
