"""Fine-tuning: freeze policies, BatchNorm in inference mode, phase planning,
per-stage learning rates and a two-phase run resumed in either phase."""

import csv
import dataclasses

import keras
import numpy as np
import pytest
from synthetic import interrupt_at, write_image_folder

from keras_resnet import build_resnet
from keras_resnet.train import finetune as ft
from keras_resnet.train.config import TrainConfig


def tiny(name="resnet20", num_classes=3, width=0.25):
    return build_resnet(name, num_classes=num_classes, width_multiplier=width)


def data(n=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(2.0, 3.0, (n, 32, 32, 3)).astype("float32")  # far from BN's initial statistics
    y = keras.utils.to_categorical(np.arange(n) % classes, classes)
    return x, y


def expected_trainable_layers(model, policy, train_batchnorm=True):
    """The rule spelled out independently of finetune.py."""
    stages = sorted({layer.name.split("_")[0] for layer in model.layers if layer.name[:4] == "conv"} - {"conv1"})
    k = int(policy[-1]) if policy.startswith("until_stage") else 0
    frozen_prefixes = {"none": (), "head_only": None}.get(policy)
    if frozen_prefixes is None and policy != "head_only":
        frozen_prefixes = ("conv1_", "pool1_") + tuple(f"{s}_" for s in stages[:k])
        if k == len(stages):
            frozen_prefixes += ("post_",)
    names = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        if policy == "head_only":
            trainable = layer.name in ("predictions",) or layer.name.startswith("head_")
        else:
            trainable = not layer.name.startswith(frozen_prefixes)
        if isinstance(layer, keras.layers.BatchNormalization) and not train_batchnorm:
            trainable = False
        if trainable:
            names.add(layer.name)
    return names


@pytest.mark.parametrize(
    "name,policy",
    [
        ("resnet20", "none"),
        ("resnet20", "head_only"),
        ("resnet20", "until_stage1"),
        ("resnet20", "until_stage2"),
        ("resnet20", "until_stage3"),
        ("resnet18_v2", "until_stage3"),
        ("resnet18_v2", "until_stage4"),
        ("resnet18", "until_stage4"),
    ],
)
@pytest.mark.parametrize("train_batchnorm", [True, False])
def test_freeze_policy_sets_exactly_the_expected_variables(name, policy, train_batchnorm):
    model = tiny(name, width=0.0625 if name.startswith("resnet18") else 0.25)
    ft.freeze(model, policy, train_batchnorm=train_batchnorm)
    want = expected_trainable_layers(model, policy, train_batchnorm)
    trainable_layers = {v.path.split("/")[0] for v in model.trainable_variables}
    assert trainable_layers == want
    assert {layer.name for layer in model.layers if layer.weights and layer.trainable} == want
    # The table accounts for every parameter.
    counts = ft.parameter_counts(model)
    assert sum(sum(row.values()) for row in counts.values()) == model.count_params()
    assert sum(row["trainable"] for row in counts.values()) == sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    table = ft.parameter_table(model)
    assert table.splitlines()[0].split() == ["part", "trainable", "frozen", "statistics"]
    assert "stage1" in table and table.splitlines()[-1].startswith("total")


def test_policy_errors():
    model = tiny()
    with pytest.raises(ValueError, match=r"3 stages.*until_stage4"):
        ft.freeze(model, "until_stage4")
    with pytest.raises(ValueError, match="'stage2'"):
        ft.freeze(model, "stage2")


def snapshot(model):
    return {v.path: v.numpy().copy() for v in model.weights}


def test_frozen_batchnorm_keeps_statistics_through_fit_and_later_unfreezing():
    model = tiny()
    x, y = data()
    start = snapshot(model)
    # Phase 1: head only.
    ft.freeze(model, "head_only", train_batchnorm=False)
    model.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy")
    # A frozen BN runs in inference mode: training=True gives the inference output.
    np.testing.assert_allclose(model(x, training=True), model(x, training=False), rtol=1e-5, atol=1e-6)
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    after_head = snapshot(model)
    for path, value in after_head.items():
        if path.startswith("predictions"):
            assert not np.array_equal(value, start[path]), path
        else:
            np.testing.assert_array_equal(value, start[path], err_msg=path)
    # Phase 2: backbone unfrozen from stage 2 on; every BatchNorm stays frozen.
    ft.freeze(model, "until_stage1", train_batchnorm=False)
    model.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    after = snapshot(model)
    bn_paths = [p for p in after if "_bn/" in p]
    assert bn_paths and all(np.array_equal(after[p], start[p]) for p in bn_paths)
    assert np.array_equal(after["conv2_block1_1_conv/kernel"], start["conv2_block1_1_conv/kernel"])
    assert not np.array_equal(after["conv3_block1_1_conv/kernel"], start["conv3_block1_1_conv/kernel"])


def test_trainable_batchnorm_updates_only_unfrozen_statistics():
    model = tiny()
    x, y = data()
    start = snapshot(model)
    ft.freeze(model, "until_stage2", train_batchnorm=True)
    model.compile(keras.optimizers.SGD(0.01), "categorical_crossentropy")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    after = snapshot(model)
    for layer in ("conv1_bn", "conv2_block1_1_bn", "conv3_block3_2_bn"):
        np.testing.assert_array_equal(after[f"{layer}/moving_mean"], start[f"{layer}/moving_mean"], err_msg=layer)
    assert not np.array_equal(after["conv4_block1_1_bn/moving_mean"], start["conv4_block1_1_bn/moving_mean"])


# ------------------------------------------------------------------- phases


def config_with(epochs=10, weights=None, optimizer_lr=0.1, **finetune):
    config = TrainConfig()
    config.training.epochs = epochs
    config.model.weights = weights
    config.optimizer.learning_rate = optimizer_lr
    config.finetune = ft.FinetuneConfig(**finetune)
    return config


def test_single_phase_plan():
    [phase] = ft.plan_phases(config_with(epochs=7, freeze="until_stage2"))
    assert (phase.name, phase.epochs, phase.freeze, phase.initial_epoch) == ("train", 7, "until_stage2", 0)
    assert phase.learning_rate_scale == 1.0 and phase.train_batchnorm is True  # from scratch: BN trains
    [phase] = ft.plan_phases(config_with(epochs=7, weights="imagenet"))
    assert phase.train_batchnorm is False  # pretrained: BN stays frozen by default


def test_two_phase_plan():
    config = config_with(
        epochs=10, weights="run/", head_epochs=3, head_learning_rate=1.0, unfreeze="until_stage1",
        backbone_lr_multiplier=0.1, stage_lr_multipliers=(0.0, 0.5),
    )
    head, tune = ft.plan_phases(config)
    assert (head.name, head.epochs, head.freeze, head.initial_epoch, head.end_epoch) == ("head", 3, "head_only", 0, 3)
    assert head.learning_rate_scale == pytest.approx(10.0)
    assert (tune.name, tune.epochs, tune.freeze, tune.initial_epoch, tune.end_epoch) == (
        "finetune", 7, "until_stage1", 3, 10)
    assert tune.learning_rate_scale == 1.0 and tune.train_batchnorm is False
    assert dict(tune.lr_multipliers) == {
        "conv1_": 0.0, "pool1_": 0.0, "conv2_": 0.0, "conv3_": 0.5, "conv4_": 0.1, "conv5_": 0.1}
    assert ft.phase_at_epoch([head, tune], 2) is head and ft.phase_at_epoch([head, tune], 3) is tune
    assert ft.remaining_phases([head, tune], 5) == [tune]
    explicit = dataclasses.replace(config.finetune, train_batchnorm=True)
    config.finetune = explicit
    assert all(p.train_batchnorm for p in ft.plan_phases(config))


def test_plan_errors():
    with pytest.raises(ValueError, match="head_epochs=10, epochs=10"):
        ft.plan_phases(config_with(epochs=10, head_epochs=10))
    with pytest.raises(ValueError, match="finetune.freeze"):
        ft.FinetuneConfig(freeze="stage1")
    with pytest.raises(ValueError, match="stage_lr_multipliers"):
        ft.FinetuneConfig(stage_lr_multipliers=(1.0, -1.0))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_lr_multipliers_scale_the_learning_rate_per_stage(optimizer):
    x, y = data()
    deltas = []
    for multipliers in ((), (("conv2_", 0.0), ("conv3_", 0.5))):
        keras.utils.set_random_seed(0)
        model = tiny()
        ft.freeze(model, "none", train_batchnorm=False)
        start = snapshot(model)
        opt = keras.optimizers.SGD(0.1) if optimizer == "sgd" else keras.optimizers.Adam(0.01)
        ft.apply_lr_multipliers(opt, model, multipliers)
        model.compile(opt, "categorical_crossentropy")
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # one step
        deltas.append({p: v - start[p] for p, v in snapshot(model).items()})
    plain, scaled = deltas
    key2, key3, key4 = "conv2_block1_1_conv/kernel", "conv3_block1_1_conv/kernel", "conv4_block1_1_conv/kernel"
    assert np.abs(plain[key2]).max() > 0 and np.all(scaled[key2] == 0)
    # Adam normalises the gradient: only a true learning-rate scale halves its step.
    np.testing.assert_allclose(scaled[key3], 0.5 * plain[key3], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(scaled[key4], plain[key4], rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------- two phases, resumed


@pytest.mark.filterwarnings("ignore:Your input ran out of data")  # from the simulated interruption
@pytest.mark.parametrize(
    "interrupt_before,resumed",
    [
        pytest.param(
            1, ["Phase 'head': resuming after epoch 1 of 2", "Phase 'finetune': epochs 3-4, freeze=until_stage1"],
            marks=pytest.mark.slow,  # the default set keeps in_phase_2: the same resume, phase 1 already complete
        ),
        (3, ["Phase 'head': already complete (epochs 1-2)", "Phase 'finetune': resuming after epoch 3 of 4"]),
    ],
    ids=["in_phase_1", "in_phase_2"],
)
def test_two_phase_run_interrupted_resumes_in_that_phase(tmp_path, interrupt_before, resumed):
    from keras_resnet.runs import atomic_save_model
    from keras_resnet.train.config import load_config
    from keras_resnet.train.trainer import train

    write_image_folder(tmp_path / "images", train_per_class=4)
    pretrained = tiny()
    atomic_save_model(pretrained, tmp_path / "pretrained" / "model.keras")
    config = load_config(overrides={
        "data.dataset": None, "data.data_dir": str(tmp_path / "images"), "data.batch_size": 4,
        "data.validation_fraction": 0.25, "data.cache": "none",
        "model.name": "resnet20", "model.width_multiplier": 0.25, "model.weights": str(tmp_path / "pretrained"),
        "training.epochs": 4, "training.progress": "none", "training.tensorboard": False,
        "training.evaluate_split": "none", "schedule.warmup_epochs": 0.0,
        "finetune.head_epochs": 2, "finetune.head_learning_rate": 0.5, "finetune.unfreeze": "until_stage1",
        "run_dir": str(tmp_path / "run"),
    })
    first_log = []
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[interrupt_at(interrupt_before)], log=first_log.append)
    first_text = "\n".join(first_log)
    assert "Phase 'head' parameters (freeze=head_only)" in first_text  # the per-stage table, before training
    assert "stage1" in first_text and "frozen" in first_text
    with open(tmp_path / "run" / "history.csv") as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == list(range(1, interrupt_before + 1))

    second_log = []
    run_dir = train(config, log=second_log.append)
    text = "\n".join(second_log)
    for message in resumed:
        assert message in text
    finetune_table = "Phase 'finetune' parameters (freeze=until_stage1)"
    assert finetune_table in (first_text if interrupt_before > 2 else text)  # printed before phase 2 trains
    with open(run_dir / "history.csv") as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == [1, 2, 3, 4]

    final = keras.models.load_model(run_dir / "model.keras", compile=False)
    start = {layer.name: layer.get_weights() for layer in pretrained.layers}
    for layer in final.layers:
        if isinstance(layer, keras.layers.BatchNormalization) or layer.name.startswith(("conv1_", "conv2_")):
            for a, b in zip(layer.get_weights(), start[layer.name]):
                np.testing.assert_array_equal(a, b, err_msg=layer.name)
    changed = final.get_layer("conv3_block1_1_conv").get_weights()[0]
    assert not np.array_equal(changed, start["conv3_block1_1_conv"][0])


def test_fine_tuning_builds_a_fresh_head_even_with_the_source_class_count(tmp_path):
    from keras_resnet.runs import atomic_save_model
    from keras_resnet.train.config import load_config
    from keras_resnet.train.trainer import build_model

    source = tiny()
    source.get_layer("predictions").set_weights([w + 1.0 for w in source.get_layer("predictions").get_weights()])
    atomic_save_model(source, tmp_path / "source" / "model.keras")
    config = load_config(overrides={"model.name": "resnet20", "model.width_multiplier": 0.25,
                                    "model.weights": str(tmp_path / "source")})
    kept = build_model(config.model, 3, (32, 32))
    fresh = build_model(config.model, 3, (32, 32), new_head=True)
    for model in (kept, fresh):
        np.testing.assert_array_equal(model.get_layer("conv4_block3_2_conv").get_weights()[0],
                                      source.get_layer("conv4_block3_2_conv").get_weights()[0])
    np.testing.assert_array_equal(kept.get_layer("predictions").get_weights()[1],
                                  source.get_layer("predictions").get_weights()[1])
    assert not np.allclose(fresh.get_layer("predictions").get_weights()[1],
                           source.get_layer("predictions").get_weights()[1])
