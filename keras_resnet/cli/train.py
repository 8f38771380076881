"""``kresnet train``: parse flags into a config, call `keras_resnet.train.train`, print where the run went."""

from __future__ import annotations

import sys

import click

from keras_resnet.compat import import_tensorflow_quietly
from keras_resnet.config import Precision, StrategyName, choices

EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130


def flag_overrides(**flags) -> dict:
    """Map the given command-line flags to dotted config keys (flags not given are left out).

    Example:
        >>> flag_overrides(dataset="cifar10", epochs=2, batch_size=None)
        {'data.dataset': 'cifar10', 'training.epochs': 2}
    """
    keys = {
        "dataset": "data.dataset",
        "data_dir": "data.data_dir",
        "model": "model.name",
        "weights": "model.weights",
        "epochs": "training.epochs",
        "batch_size": "data.batch_size",
        "learning_rate": "optimizer.learning_rate",
        "seed": "training.seed",
        "strategy": "training.strategy",
        "precision": "training.precision",
        "run_dir": "run_dir",
    }
    overrides = {keys[name]: value for name, value in flags.items() if value is not None}
    if flags.get("data_dir") is not None and flags.get("dataset") is None:
        overrides["data.dataset"] = None  # a plain image folder
    return overrides


def resolve_train_config(config_file, set_values, **flags):
    """The layered config of a ``kresnet train`` call, and the recipe file it started from.

    Without ``--config``, CIFAR-10 (the default dataset, or a data folder named
    ``cifar10``) starts from ``configs/cifar10_resnet32.yaml``.

    Returns:
        ``(TrainConfig, recipe path or None)``.
    """
    from pathlib import Path

    from keras_resnet.config import default_recipe, find_recipe
    from keras_resnet.train.config import load_config  # the config layer's, plus the model-table check

    if config_file is not None:
        recipe = find_recipe(config_file)
    else:
        name = flags.get("dataset") or (Path(flags["data_dir"]).name if flags.get("data_dir") else "cifar10")
        recipe = default_recipe(name)
    return load_config(recipe, overrides=flag_overrides(**flags), set_values=list(set_values)), recipe


CONFIG_SOURCE_OPTIONS = (
    click.option("--config", "config_file", metavar="YAML",
                 help="Config file or recipe name in configs/ (e.g. cifar10_resnet56)."),
    click.option("--dataset", help="TFDS name (cifar10, imagenette, ...); with --data-dir alone: a plain image folder."),
    click.option("--data-dir", help="Image folder ROOT/<split>/<class>/<image>, or a local copy of --dataset."),
    click.option("--model", help="Model name (see `kresnet models`)."),
)


def config_source_options(command):
    """Add --config, --dataset, --data-dir and --model (shared by `train` and `tune`) to ``command``."""
    for option in reversed(CONFIG_SOURCE_OPTIONS):
        command = option(command)
    return command


@click.command("train")
@config_source_options
@click.option("--weights", help="Start from weights: 'imagenet', a .weights.h5/.keras file or a run directory.")
@click.option("--epochs", type=int, help="Total epochs.")
@click.option("--batch-size", type=int, help="Global batch size (split across replicas).")
@click.option("--learning-rate", type=float, help="Peak learning rate per optimizer.reference_batch_size images.")
@click.option("--seed", type=int, help="Random seed.")
@click.option("--strategy", type=click.Choice(choices(StrategyName)), help="Distribution strategy (training.strategy).")
@click.option("--precision", type=click.Choice(choices(Precision)), help="Compute precision (training.precision).")
@click.option("--run-dir", help="Run directory (default saved_models/<model>-<dataset>-<time>). Same dir again = resume.")
@click.option("--set", "set_values", multiple=True, metavar="KEY=VALUE",
              help="Override any config key, value as YAML (repeatable): --set optimizer.nesterov=false")
@click.option("--print-config", is_flag=True, help="Print the resolved config and exit.")
def train_command(config_file, set_values, print_config, **flags) -> None:
    """Train a ResNet (or fine-tune a pretrained one) and write a run directory.

    Config layers: built-in defaults, then --config YAML, then the flags, then --set.
    Without --config, CIFAR-10 uses the recipe configs/cifar10_resnet32.yaml.
    The run directory gets model.keras, best.keras, config.yaml, labels.txt,
    preprocessing.json, history.csv, metrics.json, PNG plots and TensorBoard logs.

    Re-running with the same --run-dir resumes an interrupted run (Ctrl-C, SIGTERM,
    kill -9) from its last completed epoch. `kresnet train --config RUN/config.yaml`
    repeats a run in a new directory.

    \b
    Examples:
      kresnet train --dataset cifar10 --epochs 1
      kresnet train --config cifar10_resnet56 --run-dir saved_models/r56
      kresnet train --data-dir ~/flowers --model resnet50 --weights imagenet \\
          --config configs/folder_finetune_resnet50.yaml
      kresnet train --config saved_models/r56/config.yaml --set training.seed=1
      kresnet train --dataset cifar10 --set optimizer.name=adamw --set optimizer.learning_rate=0.004
    """
    import_tensorflow_quietly()  # checking model.name reads the model table, which imports Keras
    config, recipe = resolve_train_config(config_file, set_values, **flags)  # errors: the group's boundary
    from keras_resnet.config import config_to_yaml

    if print_config:
        click.echo(config_to_yaml(config), nl=False)
        return
    if recipe is not None:
        click.echo(f"Recipe: {recipe}")

    from keras_resnet.train.callbacks import TrainingDivergedError
    from keras_resnet.train.trainer import train

    try:
        run_dir = train(config, log=click.echo)
    except TrainingDivergedError as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(EXIT_DIVERGED)
    except KeyboardInterrupt:
        where = f"--run-dir {config.run_dir}" if config.run_dir else "--run-dir <the run directory above>"
        click.echo(f"\nInterrupted. Run the same command with {where} to resume from the last completed epoch.",
                   err=True)
        sys.exit(EXIT_INTERRUPTED)
    click.echo(f"Run saved to {run_dir}")
