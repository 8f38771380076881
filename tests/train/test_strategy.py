"""strategy.py: which tf.distribute strategy each `training.strategy` value gives, and a real
mixed_bfloat16 run (`training.precision`, set by `configure_process`)."""

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from synthetic import make_datasets, tiny_config

from keras_resnet.train.strategy import configure_process, make_strategy


@pytest.fixture
def no_gpus(monkeypatch):
    """Pretend the machine has no GPU (the accelerator machines have one), keeping CPUs as they are."""
    import tensorflow as tf

    real = tf.config.list_logical_devices
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: [] if kind == "GPU" else real(kind))


def test_default_is_the_default_strategy(no_gpus):
    import tensorflow as tf

    strategy = make_strategy("default")
    assert strategy is tf.distribute.get_strategy() and strategy.num_replicas_in_sync == 1
    assert type(strategy).__name__ == "_DefaultDistributionStrategy"


@pytest.mark.parametrize("gpus, mirrored", [(0, False), (1, False), (2, True), (4, True)])
def test_auto_mirrors_only_over_more_than_one_gpu(monkeypatch, gpus, mirrored):
    import types

    import tensorflow as tf

    real = tf.config.list_logical_devices
    fake = [types.SimpleNamespace(name=f"/device:GPU:{i}", device_type="GPU") for i in range(gpus)]
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: fake if kind == "GPU" else real(kind))
    created = []
    monkeypatch.setattr(tf.distribute, "MirroredStrategy", lambda *args, **kwargs: created.append(kwargs) or "mirrored")
    strategy = make_strategy("auto")
    if mirrored:
        assert strategy == "mirrored" and created == [{}]  # MirroredStrategy's own default: all visible GPUs
    else:
        assert strategy is tf.distribute.get_strategy() and created == []


def test_mirrored_without_gpus_spans_the_local_cpus(no_gpus):
    import tensorflow as tf

    strategy = make_strategy("mirrored")
    assert type(strategy).__name__ == "MirroredStrategy"
    assert strategy.num_replicas_in_sync == len(tf.config.list_logical_devices("CPU"))


def test_tpu_without_a_tpu_is_a_clear_error():
    with pytest.raises(ValueError, match=r"strategy 'tpu' found no TPU .*use auto, default or mirrored.*strategy='tpu'"):
        make_strategy("tpu")


def test_tpu_through_the_cli_fails_before_any_work(tmp_path):
    from keras_resnet.cli import main

    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--dataset", "cifar10", "--strategy", "tpu", "--run-dir", str(run)])
    assert result.exit_code == 1, result.output
    assert "strategy 'tpu' found no TPU" in result.output and "Traceback" not in result.output
    # nothing of a run was written (the folder itself may exist: its writability is checked first)
    assert not run.exists() or not any(run.iterdir()), sorted(run.iterdir())


def test_unknown_strategy_and_multi_worker_without_tf_config(monkeypatch):
    with pytest.raises(ValueError, match="strategy='gpu'"):
        make_strategy("gpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        make_strategy("multi_worker")


def test_configure_process_sets_the_precision_policy():
    configure_process(seed=3, deterministic=False, precision="mixed_bfloat16")
    assert keras.mixed_precision.dtype_policy().name == "mixed_bfloat16"
    configure_process(seed=3, deterministic=False, precision="float32")
    assert keras.mixed_precision.dtype_policy().name == "float32"


@pytest.mark.slow  # test_precision's bfloat16 training run stays in the default set
def test_mixed_bfloat16_training_run(tmp_path):
    """A real run with training.precision=mixed_bfloat16: convolutions compute in bfloat16 on float32
    variables, the head in float32; the run finishes with finite weights and a float32 softmax."""
    seen = {}

    class Probe(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if seen:
                return
            conv = self.model.get_layer("conv2_block1_1_conv")
            seen["policy"] = keras.mixed_precision.dtype_policy().name
            seen["conv"] = (conv.compute_dtype, conv.variable_dtype, str(conv.kernel.dtype))
            seen["head"] = self.model.get_layer("predictions").compute_dtype
            probe = keras.Model(self.model.input, [conv.output, self.model.output])
            activation, output = probe(np.zeros((1, 32, 32, 3), "float32"))
            seen["tensors"] = (keras.backend.standardize_dtype(activation.dtype), keras.backend.standardize_dtype(output.dtype))

    lines = []
    config = tiny_config(tmp_path / "run", epochs=1, precision="mixed_bfloat16", strategy="default")
    run = train_run(config, Probe(), lines)
    assert seen["policy"] == "mixed_bfloat16"
    assert seen["conv"] == ("bfloat16", "float32", "float32")
    assert seen["head"] == "float32"
    assert seen["tensors"] == ("bfloat16", "float32")
    assert any("1 replica(s)" in line for line in lines)
    from keras_resnet.train.callbacks import read_history

    history = read_history(run / "history.csv")
    assert len(history) == 1 and np.isfinite(float(history[0]["loss"]))
    model = keras.models.load_model(run / "model.keras", compile=False)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    images = np.concatenate([x for x, _ in make_datasets().test.as_numpy_iterator()])
    probs = np.asarray(model.predict(images, verbose=0))
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-3)
    assert json.loads((run / "metrics.json").read_text())["num_examples"] == 9


def train_run(config, probe, lines):
    from keras_resnet.train.trainer import train

    return train(config, datasets=make_datasets(), callbacks=[probe], log=lines.append)
