"""``kresnet convert-weights``: a torchvision/timm ResNet-18/34 checkpoint -> kresnet weights."""

from __future__ import annotations

import click

from keras_resnet.compat import import_tensorflow_quietly

#: Same as `keras_resnet.models.weight_cache.CONVERTIBLE_MODELS` (not imported: importing the
#: models package loads Keras; tests/models/test_weights.py checks the two agree).
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

    CHECKPOINT is a .safetensors file or a .pth state dict. A .pth is read with
    torch when it is installed, else without torch by a restricted reader that
    rebuilds tensors only and refuses a file whose pickle names anything else.
    Convolution kernels are transposed to Keras' layout, BatchNorm statistics and
    the 1000-class fc layer are kept.

    build_resnet("resnet18", weights="imagenet") does this by itself with
    torchvision's checkpoint when it can download it; this command is for offline
    machines and for other checkpoints (timm, your own).

    \b
    Examples:
      kresnet convert-weights resnet18 model.safetensors
      kresnet convert-weights resnet34 resnet34-b627a593.pth -o resnet34_imagenet.weights.h5
    """
    import_tensorflow_quietly()
    from keras_resnet.models.weights import convert_weights

    path = convert_weights(model, checkpoint, output)  # errors: the group's boundary
    click.echo(f"Wrote {path}")
