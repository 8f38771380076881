"""benchmarks/transfer.py's sampling, selection and summary (no training)."""

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def transfer(benchmark_script):
    return benchmark_script("transfer")


def write_folder(root, classes, per_class):
    for index, name in enumerate(classes):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((4, 4, 3), (index * 50 + i) % 256, dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:03d}.jpg", quality=100)


def test_few_shot_samples_are_disjoint_repeatable_and_differ_across_seeds(transfer, tmp_path):
    write_folder(tmp_path, ["x", "y"], per_class=200)
    names = {}
    for seed in (0, 1):
        (x_train, y_train), (x_val, y_val) = transfer.load_few_shot(tmp_path, ["x", "y"], 20, 10, seed)
        assert x_train.shape == (40, 4, 4, 3) and x_val.shape == (20, 4, 4, 3)
        assert np.bincount(y_train).tolist() == [20, 20] and np.bincount(y_val).tolist() == [10, 10]
        # every image of a class has its own grey level: equal pixels mean the same file
        train_ids = {(int(label), int(image[0, 0, 0])) for image, label in zip(x_train, y_train)}
        val_ids = {(int(label), int(image[0, 0, 0])) for image, label in zip(x_val, y_val)}
        assert len(train_ids) == 40 and len(val_ids) == 20 and not train_ids & val_ids
        names[seed] = (train_ids, val_ids)
    assert names[0][0] != names[1][0] and names[0][1] != names[1][1]  # each seed its own sample
    (again, _), _ = transfer.load_few_shot(tmp_path, ["x", "y"], 20, 10, 1)
    assert {(int(label), int(image[0, 0, 0])) for image, label in zip(again, y_train)} == names[1][0]


def test_few_shot_names_the_folder_that_is_too_small(transfer, tmp_path):
    write_folder(tmp_path, ["x"], per_class=5)
    with pytest.raises(ValueError, match=r"train/x has 5 images; shots \+ val_per_class need 6"):
        transfer.load_few_shot(tmp_path, ["x"], 4, 2)


def test_select_uses_validation_only_and_breaks_ties_on_loss(transfer):
    runs = [
        {"label": "a", "val_accuracy": 80.0, "val_loss": 0.5, "test_accuracy": 99.0},
        {"label": "b", "val_accuracy": 82.0, "val_loss": float("nan"), "test_accuracy": 10.0},
        {"label": "c", "val_accuracy": 82.0, "val_loss": 0.7, "test_accuracy": 50.0},
    ]
    assert transfer.select(runs)["label"] == "c"


def test_summarise_averages_the_selected_accuracies_over_seeds(transfer):
    def seed(two_phase, scratch):
        return {"two_phase": {"selected": {"test_accuracy": two_phase}},
                "scratch": {"selected": {"test_accuracy": scratch}}}

    accuracy, gain = transfer.summarise({0: seed(84.0, 74.0), 1: seed(85.5, 73.0)})
    assert accuracy == {"two_phase": {"mean": 84.75, "per_seed": [84.0, 85.5]},
                        "scratch": {"mean": 73.5, "per_seed": [74.0, 73.0]}}
    assert gain == {"mean": 11.25, "per_seed": [10.0, 12.5]}


@pytest.mark.parametrize("argv,message", [
    (["--seeds", "0,0"], "distinct"),
    (["--seeds", "a"], "integers"),
    (["--head-epochs", "30", "--finetune-epochs", "30"], "--head-epochs must be below --finetune-epochs"),
    (["--scratch-lrs", "0.1,-1"], "positive"),
])
def test_bad_arguments_are_named(transfer, capsys, argv, message):
    with pytest.raises(SystemExit):
        transfer.parse_args(argv)
    assert message in capsys.readouterr().err
