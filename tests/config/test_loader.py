"""The config loader: layering, strict type checking and error messages (no TensorFlow work)."""

import re

import pytest
import yaml

from keras_resnet.config import (
    CONFIGS_DIR,
    TrainConfig,
    config_to_dict,
    default_recipe,
    find_recipe,
    load_config,
    parse_set_value,
    save_config,
)


def write(tmp_path, data, name="c.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_defaults_then_yaml_then_flags_then_set(tmp_path):
    path = write(tmp_path, {"training": {"epochs": 7, "seed": 3}, "optimizer": {"momentum": 0.8},
                            "data": {"batch_size": 64}})
    config = load_config(path, overrides={"training.epochs": 5, "data.batch_size": 32},
                         set_values=["training.epochs=2", "optimizer.weight_decay=1e-4"])
    assert config.training.epochs == 2  # --set beats the flag beats the YAML
    assert config.data.batch_size == 32  # flag beats YAML
    assert config.training.seed == 3  # YAML beats default
    assert config.optimizer.momentum == 0.8
    assert config.optimizer.weight_decay == pytest.approx(1e-4)  # "1e-4" (a YAML string) accepted as float
    assert config.model.name == TrainConfig().model.name  # default kept


def test_set_values_parse_yaml_scalars_and_lists():
    assert parse_set_value("optimizer.nesterov=false") == ("optimizer.nesterov", False)
    assert parse_set_value("model.hidden_units=[8, 4]") == ("model.hidden_units", [8, 4])
    assert parse_set_value("model.weights=null") == ("model.weights", None)
    config = load_config(set_values=["model.hidden_units=[8, 4]", "data.augment.pad=2", "model.weights=null"])
    assert config.model.hidden_units == (8, 4) and config.data.augment.pad == 2


def test_none_override_sets_null():
    assert load_config(overrides={"data.dataset": None, "data.data_dir": "x"}).data.dataset is None


@pytest.mark.parametrize(
    "data, fragments",
    [
        ({"training": {"epochz": 3}}, ["unknown config key 'training.epochz'", "epochs"]),
        ({"trainin": {"epochs": 3}}, ["unknown config key 'trainin'", "training"]),
        ({"data": {"augment": {"flip": True}}}, ["'data.augment.flip'", "horizontal_flip"]),
        ({"training": {"epochs": "ten"}}, ["'training.epochs'", "an integer", "'ten'"]),
        ({"training": {"epochs": 2.5}}, ["'training.epochs'", "an integer", "2.5"]),
        ({"training": {"deterministic": "yes"}}, ["'training.deterministic'", "true or false"]),
        ({"optimizer": {"name": "rmsprop"}}, ["'optimizer.name'", "'sgd', 'adamw'", "rmsprop"]),
        ({"model": {"hidden_units": [8, "x"]}}, ["'model.hidden_units[1]'", "an integer"]),
        ({"model": {"hidden_units": 8}}, ["'model.hidden_units'", "a list of an integer"]),
        ({"model": {"weights": 3}}, ["'model.weights'", "a string or null"]),
        ({"model": "resnet20"}, ["'model'", "a mapping with keys name"]),
        ({"finetune": {"freeze": "all"}}, ["'finetune.freeze'", "head_only"]),
    ],
)
def test_yaml_errors_name_file_key_value_and_expectation(tmp_path, data, fragments):
    path = write(tmp_path, data)
    with pytest.raises(ValueError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    "item, fragment",
    [
        ("training.epochs=0", "training.epochs must be an integer >= 1"),
        ("training.label_smoothing=1.5", "training.label_smoothing"),
        ("optimizer.learning_rate=-1", "optimizer.learning_rate"),
        ("schedule.boundaries=[60, 30]", "schedule.boundaries"),
        ("data.batch_size=0", "batch_size"),
    ],
)
def test_range_errors(item, fragment):
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[")):
        load_config(set_values=[item])


def test_flag_and_set_errors_name_their_source():
    with pytest.raises(ValueError, match="command-line flags.*'training.epochs'"):
        load_config(overrides={"training.epochs": "x"})
    with pytest.raises(ValueError, match=r"--set nope=1: unknown config key 'nope'"):
        load_config(set_values=["nope=1"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        load_config(set_values=["training.epochs"])


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(write(tmp_path, "training: [unclosed"))
    with pytest.raises(ValueError, match="mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_saved_config_round_trips(tmp_path):
    config = load_config(set_values=["model.hidden_units=[16]", "schedule.boundaries=[1, 2]", "training.seed=9"])
    path = save_config(config, tmp_path / "config.yaml")
    assert load_config(path) == config
    assert config_to_dict(load_config(path)) == config_to_dict(config)


@pytest.mark.parametrize("recipe", sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml")))
def test_recipes_load(recipe):
    overrides = {"data.data_dir": "folder"} if recipe.startswith("folder") else {}
    config = load_config(find_recipe(recipe), overrides=overrides)
    assert config.training.epochs >= 1


def test_required_recipes_exist_and_imagenet_follows_he_et_al():
    names = {p.stem for p in CONFIGS_DIR.glob("*.yaml")}
    assert {"cifar10_resnet20", "cifar10_resnet32", "cifar10_resnet56", "cifar10_resnet18", "imagenet_resnet50",
            "folder_finetune_resnet50"} <= names
    config = load_config(find_recipe("imagenet_resnet50"))
    assert (config.optimizer.learning_rate, config.optimizer.reference_batch_size) == (0.1, 256)
    assert config.schedule.boundaries == (30.0, 60.0, 80.0) and config.training.epochs == 90
    assert config.training.strategy == "mirrored"
    finetune = load_config(find_recipe("folder_finetune_resnet50"), overrides={"data.data_dir": "x"})
    assert finetune.model.weights == "imagenet" and finetune.finetune.head_epochs > 0


def test_the_cifar10_default_is_the_resnet20_recipe_on_resnet32_for_28_epochs():
    """BENCHMARKS.md measured the default as cifar10_resnet20 with these two keys set: the files must agree."""
    assert default_recipe("cifar10") == find_recipe("cifar10_resnet32")
    measured_as = load_config(find_recipe("cifar10_resnet20"), overrides={"model.name": "resnet32", "training.epochs": 28})
    assert load_config(default_recipe("cifar10")) == measured_as


@pytest.mark.parametrize("recipe", sorted(CONFIGS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_recipe_states_its_measured_result_or_why_it_was_not_run(recipe):
    header = "\n".join(line for line in recipe.read_text().splitlines() if line.startswith("#"))
    measured = re.search(r"Measured here[^\n]*\d+\.\d+%", header)
    assert measured or re.search(r"Not (run|measured) here: \S", header), (
        f"{recipe.name}: its comment must say 'Measured here ... NN.NN%' or 'Not run here: <why>'")


def test_the_wide_two_hour_recipe_is_the_resnet56_recipe_on_resnet20_at_twice_the_width_for_54_epochs():
    """BENCHMARKS.md's run of cifar10_resnet20x2_2h is cifar10_resnet56_2h with these three keys set."""
    measured_as = load_config(
        find_recipe("cifar10_resnet56_2h"),
        overrides={"model.name": "resnet20", "model.width_multiplier": 2, "training.epochs": 54},
    )
    assert load_config(find_recipe("cifar10_resnet20x2_2h")) == measured_as
