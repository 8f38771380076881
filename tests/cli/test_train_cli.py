"""`kresnet train` / `kresnet evaluate` end to end on a tiny image folder written here."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from keras_resnet.cli import main


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 3)):
        for k, name in enumerate(["cat", "dog", "frog"]):
            d = tmp_path / "data" / split / name
            d.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
                img[:, k * 10 : k * 10 + 8] = 230
                Image.fromarray(img).save(d / f"{i}.png")
    return tmp_path / "data"


def test_train_then_evaluate_cli(tmp_path, folder):
    run = tmp_path / "run"
    args = ["train", "--data-dir", str(folder), "--model", "resnet20", "--epochs", "2", "--batch-size", "4",
            "--run-dir", str(run), "--set", "model.width_multiplier=0.25", "--set", "training.progress=none",
            "--set", "data.validation_fraction=0.25", "--set", "training.tensorboard=false"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Run saved to" in result.output and (run / "model.keras").is_file()
    assert json.loads((run / "metrics.json").read_text())["num_examples"] == 9
    result = CliRunner().invoke(main, ["evaluate", str(run)])
    assert result.exit_code == 0, result.output
    assert "top-1" in result.output and "frog" in result.output


def test_config_errors_exit_before_training(tmp_path):
    result = CliRunner().invoke(main, ["train", "--set", "training.epochz=2", "--run-dir", str(tmp_path / "r")])
    assert result.exit_code != 0 and "unknown config key 'training.epochz'" in result.output
    assert not (tmp_path / "r").exists()
    printed = CliRunner().invoke(main, ["train", "--dataset", "cifar10", "--epochs", "1", "--print-config"])
    assert printed.exit_code == 0 and "name: resnet32" in printed.output and "epochs: 1" in printed.output
    assert "--dataset cifar10 --epochs 1" in CliRunner().invoke(main, ["train", "--help"]).output
