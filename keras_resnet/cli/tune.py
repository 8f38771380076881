"""``kresnet tune``: hyperparameter search (KerasTuner) over config keys."""

from __future__ import annotations

import click

from keras_resnet.cli.train import config_source_options
from keras_resnet.compat import import_tensorflow_quietly
from keras_resnet.config import SearchAlgorithm, choices


@click.command("tune")
@config_source_options
@click.option("--epochs", type=int, help="Epochs per trial (the budget of each trial).")
@click.option("--batch-size", type=int, help="Global batch size.")
@click.option("--seed", type=int, help="Random seed.")
@click.option("--set", "set_values", multiple=True, metavar="KEY=VALUE", help="Override a base config key (repeatable).")
@click.option("--space", "space", multiple=True, metavar="KEY=LOW:HIGH[:log]|KEY=A,B,...",
              help="A search dimension (repeatable). Default: learning rate, weight decay, label smoothing "
                   "(lists of values for grid search).")
@click.option("--max-trials", type=click.IntRange(min=1), default=None,
              help="Trials: default 10 for random/bayesian; grid: every combination (this caps it).")
@click.option("--algorithm", type=click.Choice(choices(SearchAlgorithm)), default="random", show_default=True,
              help="random sampling, bayesian optimisation, hyperband, or grid: every combination of the "
                   "--space lists (KEY=A,B,C).")
@click.option("--dir", "directory", help="Search directory (default saved_models/tune-<model>-<dataset>-<time>); "
                                         "the same directory again resumes the search.")
def tune_command(config_file, set_values, space, max_trials, algorithm, directory, **flags) -> None:
    """Search hyperparameters with KerasTuner, scored by validation accuracy.

    Each trial trains the base config (defaults, --config, flags, --set: as in
    `kresnet train`) with the trial's values for --epochs epochs. Writes
    tune_results.csv and best_config.yaml, which `kresnet train --config` takes as is.

    \b
    Examples:
      kresnet tune --dataset cifar10 --epochs 3 --max-trials 8
      kresnet tune --dataset cifar10 --epochs 2 --algorithm grid \\
          --space optimizer.learning_rate=0.05,0.1,0.2 --space training.label_smoothing=0.0,0.1
      kresnet tune --config cifar10_resnet20 --epochs 2 \\
          --space optimizer.learning_rate=0.02:0.8:log --space training.label_smoothing=0.0,0.1
      kresnet train --config saved_models/tune-resnet20-cifar10-20261127-120000/best_config.yaml
    """
    from keras_resnet.cli.train import resolve_train_config

    import_tensorflow_quietly()
    try:
        config, _ = resolve_train_config(config_file, set_values, **flags)
        from keras_resnet.tune import parse_search_space

        parse_search_space(space, config, algorithm)  # fail on a bad space before TensorFlow starts
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    from keras_resnet.tune import tune

    try:
        tune(config, space, max_trials=max_trials, algorithm=algorithm, directory=directory, log=click.echo)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
