"""Pretrained weights: files round trip, loading by name with a report, ImageNet cache
behaviour offline, and the torchvision -> kresnet converter."""

import hashlib
import sys

import h5py
import keras
import numpy as np
import pytest
from click.testing import CliRunner
from torchvision_state import set_by_hand, torchvision_state_dict  # tests/helpers

from keras_resnet import build_resnet
from keras_resnet.cli import main
from keras_resnet.cli import weights as cli_weights
from keras_resnet.models import weight_cache
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
    monkeypatch.setattr(weight_cache, "_download", lambda *a, **k: pytest.fail("must not download when cached"))
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

    monkeypatch.setattr(weight_cache, "_download", offline)
    with pytest.raises(W.PretrainedWeightsUnavailable) as info:
        build_resnet("resnet50", num_classes=10, weights="imagenet")
    message = str(info.value)
    assert W.KERAS_WEIGHTS_URL + "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert str(tmp_path / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5") in message
    # A 1000-class model asks for the file with the top.
    with pytest.raises(W.PretrainedWeightsUnavailable, match="resnet152v2_weights_tf_dim_ordering_tf_kernels.h5"):
        W.imagenet_weights_file(W.get_spec("resnet152_v2"), include_top=True)


def test_resnet34_imagenet_offline_names_url_cache_paths_and_convert_command(tmp_path, monkeypatch):
    """Nothing cached and the download fails: one error with everything needed to do it by hand."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv(W.TORCHVISION_URL_ENV, raising=False)
    calls = []

    def offline(file_name, url, file_hash, cache_dir):
        calls.append(url)
        raise Exception(f"URL fetch failure on {url}: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(weight_cache, "_download", offline)
    with pytest.raises(W.PretrainedWeightsUnavailable) as info:
        W.imagenet_weights_file(W.get_spec("resnet34"))
    message = str(info.value)
    assert calls == ["https://download.pytorch.org/models/resnet34-b627a593.pth"]
    assert calls[0] in message
    assert str(tmp_path / "models" / "resnet34-b627a593.pth") in message
    assert "kresnet convert-weights resnet34" in message
    assert str(tmp_path / "models" / "kresnet" / "resnet34_imagenet.weights.h5") in message


def test_torchvision_file_names_carry_their_sha256_prefix(monkeypatch):
    monkeypatch.delenv(W.TORCHVISION_URL_ENV, raising=False)
    assert W.torchvision_file("resnet18") == (
        "resnet18-f37072fd.pth", "https://download.pytorch.org/models/resnet18-f37072fd.pth", "f37072fd"
    )
    monkeypatch.setenv(W.TORCHVISION_URL_ENV, "http://127.0.0.1:9/mirror")
    assert W.torchvision_file("resnet34")[1] == "http://127.0.0.1:9/mirror/resnet34-b627a593.pth"
    with pytest.raises(ValueError, match=r"'resnet18\.pth' carries no SHA-256 prefix"):
        W.sha256_prefix("resnet18.pth")
    # The CLI keeps its own copy of the list (it must not import Keras): the two agree.
    assert cli_weights.CONVERTIBLE_MODELS == W.CONVERTIBLE_MODELS == tuple(W.TORCHVISION_FILES)


# ----------------------------------------------------------------------- converter


@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
def test_converter_matches_hand_assignment(tmp_path, monkeypatch, fmt):
    """``kresnet convert-weights`` on a .safetensors file, and on a .pth read without torch."""
    from safetensors.numpy import save_file
    from torch_pth import write_pth  # tests/helpers: torch.save's format, written without torch

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "cache"))
    state = torchvision_state_dict()
    checkpoint = tmp_path / f"resnet18.{fmt}"
    if fmt == "pth":
        monkeypatch.setitem(sys.modules, "torch", None)  # the torch-free reader, also where torch is installed
        write_pth(checkpoint, state)  # with num_batches_tracked as int64, as torchvision has it
    else:
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


def test_converter_rejects_foreign_keys_and_other_models(tmp_path):
    state = torchvision_state_dict()
    state["layer1.0.se.fc1.weight"] = np.zeros((4, 64), np.float32)
    with pytest.raises(ValueError, match=r"layer1\.0\.se\.fc1\.weight"):
        W.convert_torch_state_dict(state)
    with pytest.raises(ValueError, match="resnet18, resnet34"):
        W.convert_weights("resnet50", tmp_path / "x.safetensors")
    incomplete = torchvision_state_dict()
    del incomplete["fc.weight"], incomplete["layer2.0.bn1.running_var"]
    with pytest.raises(ValueError, match=r"conv3_block1_1_bn lacks \['running_var'\]"):
        W.convert_torch_state_dict(incomplete)
    with pytest.raises(ValueError, match=r"predictions lacks \['weight'\] in the checkpoint \(it has \['bias'\]\)"):
        W.convert_torch_state_dict({"fc.bias": np.ones(3, np.float32)})


def test_pth_without_torch_goes_through_the_restricted_reader(tmp_path, monkeypatch):
    """With torch absent (forced, also where it is installed), .pth files are read by our reader."""
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    pth = tmp_path / "resnet18.pth"
    pth.write_bytes(b"not really")
    result = CliRunner().invoke(main, ["convert-weights", "resnet18", str(pth), "-o", str(tmp_path / "o.weights.h5")])
    assert result.exit_code != 0
    assert "not a zip-format torch checkpoint" in result.output and str(pth) in result.output
    assert not (tmp_path / "o.weights.h5").exists()


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
