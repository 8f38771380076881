"""`kresnet models` and `kresnet --version`."""

from click.testing import CliRunner

import keras_resnet
from keras_resnet.cli import main
from keras_resnet.models.specs import SPECS


def test_models_lists_every_variant_with_its_parameter_count():
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split() == ["name", "depth", "block", "params", "trainable", "input", "classes"]
    assert len(lines) == 1 + len(SPECS)
    rows = {line.split()[0]: line for line in lines[1:]}
    assert "25,636,712" in rows["resnet50"] and "bottleneck v1" in rows["resnet50"]
    assert "11,689,512" in rows["resnet18"] and "224x224" in rows["resnet18"]
    assert rows["resnet50"].split()[-1] == "1000"
    # CIFAR ResNets are counted with CIFAR-10's head, as a user expects: ResNet-20 is the paper's 0.27M
    assert rows["resnet20"].split()[-4:] == ["271,098", "269,722", "32x32", "10"]


def test_models_num_classes_counts_another_head():
    result = CliRunner().invoke(main, ["models", "--num-classes", "100"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.strip().splitlines()[1:]}
    assert rows["resnet20"][-4:] == ["276,948", "275,572", "32x32", "100"]
    assert rows["resnet50"][-4:] == [f"{25_636_712 - 2049 * 900:,}", f"{25_583_592 - 2049 * 900:,}", "224x224", "100"]
    bad = CliRunner().invoke(main, ["models", "--num-classes", "0"])
    assert bad.exit_code != 0 and "--num-classes" in bad.output


def test_version_and_help():
    runner = CliRunner()
    assert keras_resnet.__version__ in runner.invoke(main, ["--version"]).output
    help_text = runner.invoke(main, ["models", "--help"]).output
    assert "Examples" in help_text
