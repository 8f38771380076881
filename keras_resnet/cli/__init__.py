"""The ``kresnet`` command line: a click group whose commands parse arguments, call
library functions and print. No logic lives here.

Each command group sits in its own module and is registered below. The group
(`KresnetGroup`) is the one error boundary: an ``OSError`` (full disk, file-size limit,
read-only folder, missing file), a ``ValueError`` and the file errors of h5py, zip,
pickle, safetensors and TensorFlow become one line naming the path and what to do,
with exit status 1 (`keras_resnet.cli.errors`); Ctrl-C exits with 130. Importing the
command line imports neither TensorFlow nor Keras, so ``kresnet --help`` (and every
``--help``) answers at once: a command that needs TensorFlow calls
`keras_resnet.compat.import_tensorflow_quietly` when it starts its work, which also
drops TensorFlow's start-up notices (real errors stay visible). Choices of options
come from the ``Literal`` hints of `keras_resnet.config`.
"""

from __future__ import annotations

import signal

import click

from keras_resnet import __version__
from keras_resnet.cli.calibrate import calibrate_command
from keras_resnet.cli.data import data_command
from keras_resnet.cli.errors import describe_error, show_tracebacks
from keras_resnet.cli.evaluate import evaluate_command
from keras_resnet.cli.export import export_command
from keras_resnet.cli.models import models_command
from keras_resnet.cli.predict import predict_command
from keras_resnet.cli.train import train_command
from keras_resnet.cli.tune import tune_command
from keras_resnet.cli.weights import convert_weights_command

EXIT_INTERRUPTED = 130


def ignore_file_size_signal() -> None:
    """Make a write past the file-size limit (``ulimit -f``) raise ``OSError(EFBIG)`` instead of killing the process.

    The default action of SIGXFSZ ends the process with no message; ignored, the
    write fails with "File too large" and the error boundary says which file.
    """
    file_size_signal = getattr(signal, "SIGXFSZ", None)
    if file_size_signal is None:
        return
    try:
        signal.signal(file_size_signal, signal.SIG_IGN)
    except ValueError:  # not the main thread: leave it
        pass


class KresnetGroup(click.Group):
    """The ``kresnet`` group: every command runs inside the one error boundary (see the module docstring)."""

    def main(self, *args, **kwargs):
        ignore_file_size_signal()
        return super().main(*args, **kwargs)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("\nInterrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as error:
            message = None if show_tracebacks() else describe_error(error, ctx.invoked_subcommand)
            if message is None:
                raise
            raise click.ClickException(message) from None


@click.group(cls=KresnetGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
