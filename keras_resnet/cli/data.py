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

    Errors (exit code 1): files that will not decode — zero bytes, truncated, not an
    image (e.g. text renamed .jpg) — each by path. Warnings: empty class folders,
    a single class, train/test class mismatches, images far larger than the model
    input (with --image-size).

    \b
    Examples:
      kresnet data check ../shared/datasets/cifar10
      kresnet data check my_photos --image-size 224
    """
    import_tensorflow_quietly()
    from keras_resnet.data.check import check_folder

    report = check_folder(directory, image_size=image_size, large_factor=large_factor)
    click.echo(report.format())
    if not report.ok:
        raise SystemExit(1)
