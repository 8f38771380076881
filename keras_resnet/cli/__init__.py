"""The ``kresnet`` command line: a click group whose commands parse arguments, call
library functions and print. No logic lives here.

Each command group sits in its own module and is registered below. Importing the
command line imports neither TensorFlow nor Keras, so ``kresnet --help`` (and every
``--help``) answers at once: a command that needs TensorFlow calls
`keras_resnet.compat.import_tensorflow_quietly` when it starts its work, which also
drops TensorFlow's start-up notices (real errors stay visible). Choices of options
come from the ``Literal`` hints of `keras_resnet.config`.
"""

from __future__ import annotations

import click

from keras_resnet import __version__
from keras_resnet.cli.calibrate import calibrate_command
from keras_resnet.cli.data import data_command
from keras_resnet.cli.evaluate import evaluate_command
from keras_resnet.cli.export import export_command
from keras_resnet.cli.models import models_command
from keras_resnet.cli.predict import predict_command
from keras_resnet.cli.train import train_command
from keras_resnet.cli.tune import tune_command
from keras_resnet.cli.weights import convert_weights_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="kresnet")
def main() -> None:
    """kresnet: build, train, fine-tune, evaluate and export ResNet image classifiers.

    \b
    Examples:
      kresnet models
      kresnet train --dataset cifar10 --data-dir ../shared/datasets/cifar10
      kresnet evaluate
      kresnet export --format tflite --quantize int8
      kresnet predict saved_models/latest cat.jpg
    """


main.add_command(models_command)
main.add_command(convert_weights_command)
main.add_command(export_command)
main.add_command(predict_command)
main.add_command(train_command)
main.add_command(evaluate_command)
main.add_command(calibrate_command)
main.add_command(data_command)
main.add_command(tune_command)
