"""``kresnet models``: the table of available ResNets."""

from __future__ import annotations

import click

from keras_resnet.compat import import_tensorflow_quietly


def format_model_table() -> str:
    """The model table as aligned text: name, depth, block, parameters, input size.

    Returns:
        One header line and one line per variant.
    """
    from keras_resnet.models.specs import SPECS

    header = ("name", "depth", "block", "params", "trainable", "input")
    rows = [
        (
            spec.name,
            str(spec.depth),
            spec.display_block,
            f"{spec.params:,}",
            f"{spec.trainable:,}",
            f"{spec.default_size}x{spec.default_size}",
        )
        for spec in SPECS.values()
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right_aligned = {1, 3, 4}

    def fmt(row):
        cells = (cell.rjust(w) if i in right_aligned else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        return "  ".join(cells).rstrip()

    return "\n".join([fmt(header), *map(fmt, rows)])


@click.command("models")
def models_command() -> None:
    """List every ResNet variant with its depth, block type, parameters and input size.

    Parameters are Keras' count_params() with a 1000-class head (BatchNorm moving
    statistics included); 'trainable' excludes them. CIFAR ResNets use the paper's
    option-A (parameter-free) shortcut; build one of custom depth 6n+2 with
    build_resnet("resnet_cifar", depth=N).

    \b
    Examples:
      kresnet models
    """
    import_tensorflow_quietly()  # the models package imports Keras
    click.echo(format_model_table())
