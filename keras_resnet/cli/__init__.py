"""The ``kresnet`` command line: a click group whose commands parse arguments, call
library functions and print. No logic lives here.

Each command group sits in its own module and is registered below; TensorFlow is
imported inside the commands so ``kresnet --help`` stays fast.
"""

from __future__ import annotations

import os
import sys

import click

from keras_resnet import __version__


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow and Keras with stderr silenced.

    TensorFlow 2.21 prints C++ start-up notices (oneDNN, CUDA probing) before its
    logging is configured, ignoring TF_CPP_MIN_LOG_LEVEL, on every command. Only that
    import is silenced; an import error is still raised and shown. Set
    KRESNET_TF_STARTUP_LOGS=1 to see the notices.
    """
    if os.environ.get("KRESNET_TF_STARTUP_LOGS"):
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_import_tensorflow_quietly()

from keras_resnet.cli.data import data_command  # noqa: E402
from keras_resnet.cli.evaluate import evaluate_command  # noqa: E402
from keras_resnet.cli.export import export_command  # noqa: E402
from keras_resnet.cli.models import models_command  # noqa: E402
from keras_resnet.cli.predict import predict_command  # noqa: E402
from keras_resnet.cli.train import train_command  # noqa: E402
from keras_resnet.cli.tune import tune_command  # noqa: E402
from keras_resnet.cli.weights import convert_weights_command  # noqa: E402


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
main.add_command(data_command)
main.add_command(tune_command)
