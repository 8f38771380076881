"""sources.py: image folders, TFDS (local builder, no network), offline resolution, stratified holdout."""

import os
import time

import numpy as np
import pytest

from keras_resnet.data import sources
from keras_resnet.data.sources import (
    BadImageError,
    DatasetUnavailableError,
    folder_source,
    resolve_source,
    stratified_holdout,
    with_holdout,
)


def test_folder_splits_and_sorted_label_mapping(tmp_path, corpus):
    splits = {"train": {"zebra": 2, "ant": 3}, "validation": {"ant": 1, "zebra": 1}, "test": {"zebra": 1}}
    root = corpus.write_folder(tmp_path / "ds", splits)
    source = folder_source(root)
    assert source.class_names == ["ant", "zebra"]
    assert sorted(source.splits) == ["test", "train", "val"]
    train = source.splits["train"]
    assert [p.split("/")[-2] for p in train.paths] == ["ant"] * 3 + ["zebra"] * 2
    assert train.labels.tolist() == [0, 0, 0, 1, 1]
    # test maps by class name, not by position in its own folder listing
    assert source.splits["test"].labels.tolist() == [1]
    assert source.native_size == (8, 8)


def test_folder_of_classes_is_train_only(tmp_path, corpus):
    root = corpus.write_folder(tmp_path / "ds", {"train": {"a": 2, "b": 2}}) / "train"
    source = folder_source(root)
    assert list(source.splits) == ["train"] and source.class_names == ["a", "b"]


def test_test_class_missing_from_train_is_refused(tmp_path, corpus):
    root = corpus.write_folder(tmp_path / "ds", {"train": {"a": 2, "b": 2}, "test": {"a": 1, "c": 1}})
    with pytest.raises(ValueError, match=r"\['c'\]"):
        folder_source(root)


def test_bad_files_skipped_with_paths_or_error(tmp_path, corpus):
    root = corpus.write_folder(tmp_path / "ds", {"train": {"a": 2, "b": 2}})
    bad = corpus.write_bad_files(root / "train" / "a")
    source = folder_source(root, on_bad_image="skip")
    assert len(source.splits["train"]) == 4
    assert sorted(p for p, _ in source.bad_files) == sorted(str(p) for p in bad.values())
    reasons = dict(source.bad_files)
    assert "0 bytes" in reasons[str(bad["empty"])]
    assert "not a JPEG" in reasons[str(bad["text"])]
    assert "decode" in reasons[str(bad["truncated"])]
    with pytest.raises(BadImageError, match="empty.jpg|notes.jpg|truncated.jpg"):
        folder_source(root, on_bad_image="error")


def test_stratified_holdout_is_seeded_and_stratified():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    keep, held = stratified_holdout(labels, 0.2, seed=3)
    assert len(set(keep) & set(held)) == 0 and len(keep) + len(held) == 100
    assert np.bincount(labels[held]).tolist() == [10, 6, 4]
    keep2, held2 = stratified_holdout(labels, 0.2, seed=3)
    assert held.tolist() == held2.tolist()
    _, held3 = stratified_holdout(labels, 0.2, seed=4)
    assert held.tolist() != held3.tolist()


def test_with_holdout_keeps_own_validation_split(tmp_path, corpus):
    root = corpus.write_folder(tmp_path / "ds", {"train": {"a": 4, "b": 4}, "val": {"a": 1, "b": 1}})
    source = with_holdout(folder_source(root), 0.25, seed=0)
    assert len(source.splits["train"]) == 8 and len(source.splits["val"]) == 2
    root2 = corpus.write_folder(tmp_path / "ds2", {"train": {"a": 4, "b": 4}})
    source2 = with_holdout(folder_source(root2), 0.25, seed=0)
    assert len(source2.splits["train"]) == 6 and np.bincount(source2.splits["val"].labels).tolist() == [1, 1]
    assert not set(source2.splits["train"].paths) & set(source2.splits["val"].paths)


def test_tfds_source_from_prepared_local_builder(tiny_tfds, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = resolve_source("kresnet_tiny_images", tfds_data_dir=tiny_tfds, download=False)
    assert source.kind == "tfds" and source.class_names == ["cat", "dog", "emu"]
    assert len(source.splits["train"]) == 9 and len(source.splits["test"]) == 3
    assert source.native_size == (8, 8)
    encoded = list(source.encoded_dataset("test").as_numpy_iterator())
    assert len(encoded) == 3 and all(isinstance(e[0], bytes) for e in encoded)
    held = with_holdout(source, 1 / 3, seed=0)
    assert len(held.splits["val"]) == 3 and np.bincount(held.splits["val"].labels).tolist() == [1, 1, 1]
    val_labels = [int(y) for _, y in held.encoded_dataset("val").as_numpy_iterator()]
    assert val_labels == held.splits["val"].labels.tolist()


def test_offline_without_local_copy_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ../shared/datasets/cifar10 from here
    with pytest.raises(DatasetUnavailableError) as info:
        resolve_source("cifar10", tfds_data_dir=str(tmp_path / "tfds"), download=False)
    message = str(info.value)
    assert "shared/datasets/cifar10 (not found)" in message
    assert "not prepared" in message and "--data-dir" in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)


def test_failed_download_is_reported(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    def offline(self, *args, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sources, "_offline_reason", lambda: None)  # pretend online; the download itself fails
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(DatasetUnavailableError, match="ConnectionError: Name or service not known"):
        resolve_source("cifar10", tfds_data_dir=str(tmp_path / "tfds"), download=True)


def test_default_lookup_env_var_and_shared_dir(tmp_path, monkeypatch, corpus):
    corpus.write_folder(tmp_path / "env" / "mydata", {"train": {"a": 1, "b": 1}})
    monkeypatch.setenv("KRESNET_DATA_DIR", str(tmp_path / "env"))
    assert resolve_source("mydata").location == str(tmp_path / "env" / "mydata")
    monkeypatch.delenv("KRESNET_DATA_DIR")
    corpus.write_folder(tmp_path / "shared" / "datasets" / "other", {"train": {"a": 1, "b": 1}})
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    source = resolve_source("other")
    assert source.kind == "folder" and source.class_names == ["a", "b"]


def _closed_port() -> int:
    """A local TCP port nobody listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_network_probe_reports_unreachable_host_and_passes_a_reachable_one(monkeypatch):
    """The real probe (`_offline_reason`), against local sockets only."""
    import socket

    port = _closed_port()
    monkeypatch.setattr(sources, "NETWORK_PROBE", ("127.0.0.1", port))
    started = time.monotonic()
    reason = sources._offline_reason(timeout=2.0)
    assert time.monotonic() - started < 1.0  # a refused connection answers at once
    assert reason.startswith(f"no network: cannot reach 127.0.0.1:{port} (") and "refused" in reason.lower(), reason
    with socket.socket() as server:  # a listening port: online
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        monkeypatch.setattr(sources, "NETWORK_PROBE", server.getsockname())
        assert sources._offline_reason(timeout=2.0) is None


def test_network_probe_gives_up_after_its_timeout(monkeypatch):
    """A host that never answers: the probe returns "no network" once its timeout has passed, not later."""
    import socket

    # A listening socket whose backlog is full does not complete new handshakes: connect() hangs
    # (on Linux the SYN is dropped), exactly like an unroutable address, but without any network.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(server.getsockname())
        fillers.append(filler)
    monkeypatch.setattr(sources, "NETWORK_PROBE", server.getsockname())
    try:
        started = time.monotonic()
        reason = sources._offline_reason(timeout=0.5)
        elapsed = time.monotonic() - started
    finally:
        for sock in (*fillers, server):
            sock.close()
    assert reason is not None and reason.startswith("no network: cannot reach 127.0.0.1:"), reason
    assert "timed out" in reason and 0.4 < elapsed < 2.0, (reason, elapsed)


def test_offline_download_is_skipped_quickly(tmp_path, monkeypatch):
    """No local copy, download allowed, no network: the real probe fails fast and TFDS never starts a download."""
    import tensorflow_datasets as tfds

    def download(self, *args, **kwargs):
        raise AssertionError("download_and_prepare was called although the probe found no network")

    monkeypatch.chdir(tmp_path)
    port = _closed_port()
    monkeypatch.setattr(sources, "NETWORK_PROBE", ("127.0.0.1", port))
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", download)
    started = time.monotonic()
    with pytest.raises(DatasetUnavailableError) as info:
        resolve_source("cifar10", tfds_data_dir=str(tmp_path / "tfds"), download=True)
    assert time.monotonic() - started < 10.0  # listing local candidates and the TFDS builder, plus one refused connect
    message = str(info.value)
    assert f"TFDS download (skipped: no network: cannot reach 127.0.0.1:{port}" in message, message
    assert "--data-dir" in message  # and what to do instead
    assert sources._offline_reason.__defaults__ == (3.0,)  # the probe resolve_source runs waits 3 s at most


def test_missing_data_dir_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        resolve_source(None, str(tmp_path / "nowhere"))


# ------------------------------------------------ careless folders: nothing usable, one class, odd names


def test_a_train_folder_of_undecodable_files_is_one_clear_error(tmp_path, corpus, caplog):
    """Every file skipped used to leave an empty float32 path tensor (TypeError in ReadFile)."""
    root = tmp_path / "ds"
    for cls in ("a", "b"):
        corpus.write_bad_files(root / "train" / cls)
    with pytest.raises(ValueError, match=r"^no usable training images in .*ds/train \(6 unusable file\(s\) skipped"):
        folder_source(root)
    assert "notes.jpg: not a JPEG" in caplog.text  # the skipped files are listed first


def test_an_all_undecodable_train_folder_stops_build_datasets_too(tmp_path, corpus):
    from keras_resnet.data import DataConfig, build_datasets

    root = tmp_path / "ds"
    for cls in ("a", "b"):
        corpus.write_bad_files(root / "train" / cls)
    with pytest.raises(ValueError, match="no usable training images in"):
        build_datasets(DataConfig(dataset=None, data_dir=str(root), batch_size=2, validation_fraction=0.0), seed=0)


@pytest.mark.parametrize("layout", ["one class", "second class empty", "second class unreadable"])
def test_fewer_than_two_classes_is_refused(tmp_path, corpus, layout):
    root = corpus.write_folder(tmp_path / "ds", {"train": {"a": 3}})
    if layout != "one class":
        (root / "train" / "b").mkdir()
    if layout == "second class unreadable":
        corpus.write_bad_files(root / "train" / "b")
    message = r"has usable images of only one class \(a\); a classifier needs two or more classes"
    if layout != "one class":
        message += r" \(dropped for having no usable images: b\)"
    with pytest.raises(ValueError, match=message):
        folder_source(root)


def test_a_class_with_only_unreadable_images_is_dropped_like_an_empty_one(tmp_path, corpus, caplog):
    root = corpus.write_folder(tmp_path / "ds", {"train": {"a": 2, "b": 2}})
    (root / "train" / "c").mkdir()  # empty
    corpus.write_bad_files(root / "train" / "d")  # three files, none usable
    source = folder_source(root)
    assert source.class_names == ["a", "b"]
    assert sorted(source.splits["train"].labels.tolist()) == [0, 0, 1, 1]
    assert "Class folder dropped (no images):" in caplog.text and "train/c" in caplog.text
    assert "Class folder dropped (all 3 image file(s) unusable):" in caplog.text and "train/d" in caplog.text


def test_a_test_split_missing_train_classes_is_warned_about(tmp_path, corpus, caplog):
    root = corpus.write_folder(tmp_path / "ds", {"train": {"a": 2, "b": 2, "c": 2}, "test": {"a": 1}})
    source = folder_source(root)
    assert source.splits["test"].labels.tolist() == [0]
    assert "The test split has no images of 2 train class(es): b, c" in caplog.text


def test_a_test_split_without_usable_images_is_left_out(tmp_path, corpus, caplog):
    root = corpus.write_folder(tmp_path / "ds", {"train": {"a": 2, "b": 2}})
    corpus.write_bad_files(root / "test" / "a")
    source = folder_source(root)
    assert "test" not in source.splits
    assert "The test split has no usable images; it is left out" in caplog.text


def test_a_non_utf8_file_name_is_skipped_by_name_and_training_runs(tmp_path, corpus, caplog):
    """It used to stop `train` with "'utf-8' codec can't encode characters ... surrogates not allowed"."""
    from hostile_files import png_bytes, write_non_utf8_name

    from keras_resnet.data import AugmentConfig, DataConfig, build_datasets

    root = corpus.write_folder(tmp_path / "ds", {"train": {"a": 2, "b": 2}})
    odd = write_non_utf8_name(root / "train" / "a", png_bytes())
    source = folder_source(root)
    assert source.bad_files == [(odd, "file name is not valid UTF-8 (rename the file to use it)")]
    assert "bad\\xff\\xfe.png: file name is not valid UTF-8" in caplog.text  # escaped, so logging can print it
    with pytest.raises(BadImageError, match=r"bad\\xff\\xfe\.png: file name is not valid UTF-8"):
        folder_source(root, on_bad_image="error")
    config = DataConfig(dataset=None, data_dir=str(root), batch_size=4, validation_fraction=0.0,
                        normalization="unit", augment=AugmentConfig(enabled=False))
    data = build_datasets(config, seed=0)
    images, labels = next(iter(data.train))
    assert images.shape == (4, 8, 8, 3) and data.bad_files == source.bad_files


def test_a_non_utf8_class_folder_name_is_refused_by_name(tmp_path, corpus):
    from hostile_files import png_bytes, write_non_utf8_name

    from keras_resnet.data.check import check_folder

    root = corpus.write_folder(tmp_path / "ds", {"train": {"a": 2, "b": 2}})
    write_non_utf8_name(os.path.join(os.fsencode(root / "train"), b"c\xff"), png_bytes(), stem=b"x")
    with pytest.raises(ValueError, match=r"Class folder name is not valid UTF-8: .*train/c\\xff\. "):
        folder_source(root)
    assert any("class folder name is not valid UTF-8" in i.message for i in check_folder(root).errors)
