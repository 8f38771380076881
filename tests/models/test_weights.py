"""Pretrained weights: files round trip, loading by name with a report, ImageNet cache
behaviour offline, and the torchvision -> kresnet converter."""

import hashlib

import h5py
import keras
import numpy as np
import pytest
from click.testing import CliRunner

from keras_resnet import build_resnet
from keras_resnet.cli import main
from keras_resnet.models import weights as W
from keras_resnet.runs import atomic_save_model


def tiny(num_classes=3, **kwargs):
    return build_resnet("resnet20", num_classes=num_classes, width_multiplier=0.25, **kwargs)


def images(n=2, size=32, seed=0):
    return np.random.default_rng(seed).random((n, size, size, 3), dtype=np.float32)


def backbone_output(model, x):
    features = keras.Model(model.input, model.get_layer("avg_pool").output)
    return features.predict(x, verbose=0)


def randomize(model, seed=1):
    """Random weights everywhere, BN statistics included (so a failed load is visible)."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))


def test_weights_file_round_trip(tmp_path):
    source = tiny()
    randomize(source)
    path = W.save_weights(source, tmp_path / "a.weights.h5")
    target = tiny()
    report = W.load_pretrained(target, None, str(path))
    assert report.missing == [] and report.skipped == [] and report.unused == []
    assert len(report.loaded) == sum(1 for layer in target.layers if layer.weights)
    x = images()
    np.testing.assert_allclose(target.predict(x, verbose=0), source.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_save_weights_rejects_other_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        W.save_weights(tiny(), tmp_path / "a.h5")


@pytest.mark.parametrize("kind", ["keras", "run_dir", "weights_h5"])
def test_load_by_name_across_class_counts(tmp_path, kind, capsys):
    source = tiny(num_classes=5)
    randomize(source)
    if kind == "weights_h5":
        path = W.save_weights(source, tmp_path / "src.weights.h5")
    else:
        atomic_save_model(source, tmp_path / "run" / "model.keras")
        path = tmp_path / "run" if kind == "run_dir" else tmp_path / "run" / "model.keras"
    target = tiny(num_classes=3, weights=str(path))  # through build_resnet(weights=...)
    printed = capsys.readouterr().out
    assert "skipped predictions" in printed and "head differs" in printed
    report = W.load_pretrained(target, None, str(path), verbose=False)
    assert [name for name, _ in report.skipped] == ["predictions"]
    assert "(16, 5)" in report.skipped[0][1] and "(16, 3)" in report.skipped[0][1]
    assert report.missing == []
    assert "predictions" not in report.loaded and "conv4_block3_2_bn" in report.loaded
    x = images()
    np.testing.assert_allclose(backbone_output(target, x), backbone_output(source, x), rtol=1e-5, atol=1e-5)


def test_backbone_shape_mismatch_raises_and_assigns_nothing(tmp_path):
    wide = build_resnet("resnet20", num_classes=3, width_multiplier=0.5)
    atomic_save_model(wide, tmp_path / "wide.keras")
    target = tiny()
    before = [v.numpy().copy() for v in target.weights]
    with pytest.raises(ValueError, match=r"conv2_block1_1_conv: shapes \[\(3, 3, 8, 8\)\]"):
        W.load_pretrained(target, None, str(tmp_path / "wide.keras"), verbose=False)
    # No silent partial load: the failed call changed nothing.
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, target.weights))


def test_extra_layers_in_file_are_reported_unused(tmp_path):
    deeper = build_resnet("resnet32", num_classes=3, width_multiplier=0.25)
    atomic_save_model(deeper, tmp_path / "r32.keras")
    report = W.load_pretrained(tiny(), None, str(tmp_path / "r32.keras"), verbose=False)
    assert "conv2_block4_1_conv" in report.unused and report.missing == []


def test_partial_load_when_allowed_reports_missing(tmp_path):
    source = tiny()
    randomize(source)
    atomic_save_model(source, tmp_path / "r20.keras")
    target = build_resnet("resnet32", num_classes=3, width_multiplier=0.25)
    with pytest.raises(ValueError, match="missing from the file"):
        W.load_pretrained(target, None, str(tmp_path / "r20.keras"), verbose=False)
    report = W.load_pretrained(target, None, str(tmp_path / "r20.keras"), allow_partial=True, verbose=False)
    assert "conv2_block4_1_conv" in report.missing and "conv2_block3_1_conv" in report.loaded
    np.testing.assert_array_equal(
        target.get_layer("conv2_block3_1_conv").get_weights()[0],
        source.get_layer("conv2_block3_1_conv").get_weights()[0],
    )


def test_nothing_matching_raises(tmp_path):
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="foo")])
    atomic_save_model(other, tmp_path / "other.keras")
    with pytest.raises(ValueError, match="No layer"):
        W.load_pretrained(tiny(), None, str(tmp_path / "other.keras"), verbose=False)


def test_missing_path_and_bad_suffix(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.keras"):
        W.load_pretrained(tiny(), None, str(tmp_path / "nope.keras"))
    (tmp_path / "w.txt").write_text("x")
    with pytest.raises(ValueError, match="Unsupported weights file"):
        W.load_pretrained(tiny(), None, str(tmp_path / "w.txt"))
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match="model.keras"):
        W.load_pretrained(tiny(), None, str(tmp_path / "run"))


# ------------------------------------------------------------------------ imagenet


def test_cifar_models_have_no_imagenet_weights():
    with pytest.raises(ValueError, match="resnet50.*resnet18"):
        build_resnet("resnet20", weights="imagenet")


def test_imagenet_keras_applications_file_from_cache(tmp_path, monkeypatch):
    """A keras.applications-structured legacy .h5 in the cache loads by name, no network."""
    from keras.src.legacy.saving import legacy_h5_format

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(W, "_download", lambda *a, **k: pytest.fail("must not download when cached"))
    reference = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(32, 32, 3))
    file_name, _, _ = W.keras_applications_file("resnet50", include_top=False)
    path = tmp_path / "models" / file_name
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, reference)
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setitem(W.KERAS_WEIGHTS_HASHES, "resnet50", ("0" * 32, md5))

    model = build_resnet("resnet50", num_classes=4, input_shape=(32, 32, 3), weights="imagenet")
    x = images(seed=3)
    ours = keras.Model(model.input, model.get_layer("conv5_block3_out").output).predict(x, verbose=0)
    np.testing.assert_allclose(ours, reference.predict(x, verbose=0), rtol=1e-4, atol=1e-4)


def test_imagenet_corrupt_cached_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    file_name, url, _ = W.keras_applications_file("resnet101_v2", include_top=True)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / file_name).write_bytes(b"truncated")
    with pytest.raises(W.PretrainedWeightsUnavailable, match="md5") as info:
        W.imagenet_weights_file(W.get_spec("resnet101_v2"), include_top=True)
    assert url in str(info.value)


def test_imagenet_offline_error_names_url_and_cache_path(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def offline(file_name, url, file_hash, cache_dir):
        raise Exception(f"URL fetch failure on {url}: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(W, "_download", offline)
    with pytest.raises(W.PretrainedWeightsUnavailable) as info:
        build_resnet("resnet50", num_classes=10, weights="imagenet")
    message = str(info.value)
    assert W.KERAS_WEIGHTS_URL + "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert str(tmp_path / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5") in message
    # A 1000-class model asks for the file with the top.
    with pytest.raises(W.PretrainedWeightsUnavailable, match="resnet152v2_weights_tf_dim_ordering_tf_kernels.h5"):
        W.imagenet_weights_file(W.get_spec("resnet152_v2"), include_top=True)


def test_resnet18_imagenet_missing_explains_conversion(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(W.PretrainedWeightsUnavailable) as info:
        W.imagenet_weights_file(W.get_spec("resnet34"))
    message = str(info.value)
    assert "kresnet convert-weights resnet34" in message
    assert str(tmp_path / "models" / "kresnet" / "resnet34_imagenet.weights.h5") in message


# ----------------------------------------------------------------------- converter


def torchvision_state_dict(blocks=(2, 2, 2, 2), seed=0):
    """Random arrays with torchvision ResNet-18's key names and shapes."""
    rng = np.random.default_rng(seed)
    state = {}

    def conv(key, out_ch, in_ch, k):
        state[f"{key}.weight"] = rng.normal(0, (2 / (in_ch * k * k)) ** 0.5, (out_ch, in_ch, k, k)).astype("float32")

    def bn(key, ch):
        state[f"{key}.weight"] = rng.uniform(0.5, 1.5, ch).astype("float32")
        state[f"{key}.bias"] = rng.normal(0, 0.1, ch).astype("float32")
        state[f"{key}.running_mean"] = rng.normal(0, 0.1, ch).astype("float32")
        state[f"{key}.running_var"] = rng.uniform(0.5, 1.5, ch).astype("float32")
        state[f"{key}.num_batches_tracked"] = np.array(100, dtype=np.int64)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    in_ch = 64
    for stage, (n, ch) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
        for block in range(n):
            key = f"layer{stage}.{block}"
            conv(f"{key}.conv1", ch, in_ch, 3)
            bn(f"{key}.bn1", ch)
            conv(f"{key}.conv2", ch, ch, 3)
            bn(f"{key}.bn2", ch)
            if block == 0 and stage > 1:
                conv(f"{key}.downsample.0", ch, in_ch, 1)
                bn(f"{key}.downsample.1", ch)
            in_ch = ch
    state["fc.weight"] = rng.normal(0, 0.05, (1000, 512)).astype("float32")
    state["fc.bias"] = rng.normal(0, 0.05, 1000).astype("float32")
    return state


def set_by_hand(model, state):
    """Independent of the converter: every tensor placed by explicit name."""
    model.get_layer("conv1_conv").set_weights([state["conv1.weight"].transpose(2, 3, 1, 0)])
    bn = ("weight", "bias", "running_mean", "running_var")
    model.get_layer("conv1_bn").set_weights([state[f"bn1.{p}"] for p in bn])
    for stage in range(1, 5):
        block = 0
        while f"layer{stage}.{block}.conv1.weight" in state:
            torch_key, ours = f"layer{stage}.{block}", f"conv{stage + 1}_block{block + 1}"
            for z in (1, 2):
                kernel = state[f"{torch_key}.conv{z}.weight"]
                model.get_layer(f"{ours}_{z}_conv").set_weights([np.transpose(kernel, (2, 3, 1, 0))])
                model.get_layer(f"{ours}_{z}_bn").set_weights([state[f"{torch_key}.bn{z}.{p}"] for p in bn])
            if f"{torch_key}.downsample.0.weight" in state:
                kernel = state[f"{torch_key}.downsample.0.weight"]
                model.get_layer(f"{ours}_0_conv").set_weights([np.transpose(kernel, (2, 3, 1, 0))])
                model.get_layer(f"{ours}_0_bn").set_weights([state[f"{torch_key}.downsample.1.{p}"] for p in bn])
            block += 1
    model.get_layer("predictions").set_weights([state["fc.weight"].T, state["fc.bias"]])


def test_converter_matches_hand_assignment(tmp_path, monkeypatch):
    from safetensors.numpy import save_file

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "cache"))
    state = torchvision_state_dict()
    checkpoint = tmp_path / "resnet18.safetensors"
    save_file(state, str(checkpoint))

    result = CliRunner().invoke(main, ["convert-weights", "resnet18", str(checkpoint)])
    assert result.exit_code == 0, result.output
    expected = tmp_path / "cache" / "models" / "kresnet" / "resnet18_imagenet.weights.h5"
    assert str(expected) in result.output and expected.is_file()

    converted = build_resnet("resnet18", input_shape=(64, 64, 3), classifier_activation=None, weights="imagenet")
    by_hand = build_resnet("resnet18", input_shape=(64, 64, 3), classifier_activation=None)
    set_by_hand(by_hand, state)
    x = images(n=2, size=64, seed=5) * 2 - 1
    np.testing.assert_allclose(converted.predict(x, verbose=0), by_hand.predict(x, verbose=0), rtol=1e-4, atol=1e-4)

    # A new 10-class head on the converted backbone: the report skips only the head.
    report = W.load_pretrained(build_resnet("resnet18", num_classes=10), W.get_spec("resnet18"), "imagenet")
    assert [name for name, _ in report.skipped] == ["predictions"]


def test_converter_rejects_foreign_keys_and_pth_without_torch(tmp_path):
    state = torchvision_state_dict()
    state["layer1.0.se.fc1.weight"] = np.zeros((4, 64), np.float32)
    with pytest.raises(ValueError, match=r"layer1\.0\.se\.fc1\.weight"):
        W.convert_torch_state_dict(state)
    with pytest.raises(ValueError, match="resnet18, resnet34"):
        W.convert_weights("resnet50", tmp_path / "x.safetensors")
    pth = tmp_path / "resnet18.pth"
    pth.write_bytes(b"not really")
    try:
        import torch  # noqa: F401
    except ImportError:
        result = CliRunner().invoke(main, ["convert-weights", "resnet18", str(pth), "-o", str(tmp_path / "o.weights.h5")])
        assert result.exit_code != 0 and "needs PyTorch" in result.output


def test_converter_rejects_wrong_depth(tmp_path):
    from safetensors.numpy import save_file

    save_file(torchvision_state_dict(), str(tmp_path / "r18.safetensors"))
    with pytest.raises(ValueError, match="conv2_block3_1_conv"):
        W.convert_weights("resnet34", tmp_path / "r18.safetensors", tmp_path / "r34.weights.h5")
    assert not (tmp_path / "r34.weights.h5").exists()


def test_skip_head_keeps_new_head_with_same_class_count(tmp_path):
    source = tiny()
    randomize(source)
    atomic_save_model(source, tmp_path / "src.keras")
    target = tiny()
    head_before = target.get_layer("predictions").get_weights()
    report = W.load_pretrained(target, None, str(tmp_path / "src.keras"), skip_head=True, verbose=False)
    assert [name for name, _ in report.skipped] == ["predictions"] and "skip_head" in report.skipped[0][1]
    for a, b in zip(target.get_layer("predictions").get_weights(), head_before):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        target.get_layer("conv1_conv").get_weights()[0], source.get_layer("conv1_conv").get_weights()[0]
    )
