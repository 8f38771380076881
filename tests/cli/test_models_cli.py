"""`kresnet models` and `kresnet --version`."""

from click.testing import CliRunner

import keras_resnet
from keras_resnet.cli import main
from keras_resnet.models.specs import SPECS


def test_models_lists_every_variant_with_its_parameter_count():
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split() == ["name", "depth", "block", "params", "trainable", "input"]
    assert len(lines) == 1 + len(SPECS)
    rows = {line.split()[0]: line for line in lines[1:]}
    assert "25,636,712" in rows["resnet50"] and "bottleneck v1" in rows["resnet50"]
    assert "11,689,512" in rows["resnet18"] and "224x224" in rows["resnet18"]
    assert "32x32" in rows["resnet20"]


def test_version_and_help():
    runner = CliRunner()
    assert keras_resnet.__version__ in runner.invoke(main, ["--version"]).output
    help_text = runner.invoke(main, ["models", "--help"]).output
    assert "Examples" in help_text
