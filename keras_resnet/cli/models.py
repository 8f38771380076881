"""``kresnet models``: the table of available ResNets."""

from __future__ import annotations

import click

from keras_resnet.compat import import_tensorflow_quietly


def format_model_table(num_classes: int | None = None) -> str:
    """The model table as aligned text: name, depth, block, parameters, input size, head classes.

    Args:
        num_classes: Classes of the head the parameters are counted with; None: each
            model's usual head (1000 for ImageNet ResNets, 10 for CIFAR ResNets).

    Returns:
        One header line and one line per variant.
    """
    from keras_resnet.models.specs import SPECS

    header = ("name", "depth", "block", "params", "trainable", "input", "classes")
    rows = []
    for spec in SPECS.values():
        classes = num_classes or spec.default_num_classes
        params, trainable = spec.param_counts(classes)
        rows.append((
            spec.name,
            str(spec.depth),
            spec.display_block,
            f"{params:,}",
            f"{trainable:,}",
            f"{spec.default_size}x{spec.default_size}",
            str(classes),
        ))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right_aligned = {1, 3, 4, 6}

    def fmt(row):
        cells = (cell.rjust(w) if i in right_aligned else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        return "  ".join(cells).rstrip()

    return "\n".join([fmt(header), *map(fmt, rows)])


@click.command("models")
@click.option("--num-classes", type=click.IntRange(min=1), default=None,
              help="Count parameters with this many classes in the head "
                   "(default: 1000 for ImageNet ResNets, 10 for CIFAR ResNets).")
def models_command(num_classes: int | None) -> None:
    """List every ResNet variant with its depth, block type, parameters and input size.

    Parameters are Keras' count_params() with a head of CLASSES classes (1000 for
    ImageNet ResNets, 10 for CIFAR ResNets unless --num-classes says otherwise;
    BatchNorm moving statistics included); 'trainable' excludes them. CIFAR ResNets
    use the paper's option-A (parameter-free) shortcut (ResNet-20: 0.27M); build one
    of custom depth 6n+2 with build_resnet("resnet_cifar", depth=N).

    \b
    Examples:
      kresnet models
      kresnet models --num-classes 100
    """
    import_tensorflow_quietly()  # the models package imports Keras
    click.echo(format_model_table(num_classes))
