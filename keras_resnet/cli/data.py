"""``kresnet data``: dataset utilities (``kresnet data check DIR``)."""

from __future__ import annotations

import click

from keras_resnet.compat import import_tensorflow_quietly


@click.group("data")
def data_command() -> None:
    """Inspect image datasets before training.

    \b
    Examples:
      kresnet data check ../shared/datasets/cifar10 --image-size 32
    """


@data_command.command("check")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--image-size", type=int, default=None, help="Model input side in pixels; warns about images far larger.")
@click.option("--large-factor", type=float, default=4.0, show_default=True, help="How many times the input side counts as 'far larger'.")
def check_command(directory: str, image_size: int | None, large_factor: float) -> None:
    """Decode every image under DIRECTORY (ROOT/<split>/<class>/<image>) and report problems.

    Errors (exit code 1): files training would skip — zero bytes, truncated, not an
    image (e.g. text renamed .jpg), a header declaring more than 40 Mpixel (refused
    before decoding; KRESNET_MAX_IMAGE_PIXELS=N changes the limit, 0: none), a file
    name that is not valid UTF-8 — each by path (control characters escaped); fewer
    than two classes with usable images; test/val classes train does not have.
    Warnings: class folders training drops (empty or no usable image), train
    classes missing from test/val, images far larger than the model input (with
    --image-size).

    \b
    Examples:
      kresnet data check ../shared/datasets/cifar10
      kresnet data check my_photos --image-size 224
    """
    import_tensorflow_quietly()
    from keras_resnet.data.check import check_folder

    try:
        report = check_folder(directory, image_size=image_size, large_factor=large_factor)
    except ValueError as error:  # KRESNET_MAX_IMAGE_PIXELS that is not a number
        raise click.ClickException(str(error)) from None
    click.echo(report.format())
    if not report.ok:
        raise SystemExit(1)
