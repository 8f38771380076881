"""pipeline.py: build_datasets on folders and TFDS, normalisation stats, augmentation on/off,
class balance (weights, oversample), bad files, and the un-normalised streams for export."""

import numpy as np
import pytest

from keras_resnet.data import AugmentConfig, DataConfig, build_datasets, inference_images, representative_images
from keras_resnet.data.pipeline import class_weights
from keras_resnet.data.preprocess import normalize
from keras_resnet.data.sources import BadImageError

NO_AUG = AugmentConfig(enabled=False)


def _config(root, **kw):
    base = dict(dataset=None, data_dir=str(root), batch_size=4, validation_fraction=0.0, normalization="unit", augment=NO_AUG)
    base.update(kw)
    return DataConfig(**base)


def _all(ds):
    parts = list(ds.as_numpy_iterator())
    return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]


def test_folder_datasets_shapes_labels_and_holdout(folder, corpus):
    data = build_datasets(_config(folder, validation_fraction=1 / 3), seed=0)
    assert data.class_names == ["a", "b", "c"]
    assert data.split_sizes == {"train": 12, "test": 6, "val": 6}
    assert data.class_counts["val"] == {"a": 2, "b": 2, "c": 2}
    assert data.image_size == (8, 8) and data.preprocessing["mode"] == "unit"
    x, y = _all(data.train)
    # un-normalised uint8 (the model normalises): pad-crop + flip keep pixels exact
    assert x.shape == (12, 8, 8, 3) and x.dtype == np.uint8 and y.shape == (12, 3)
    np.testing.assert_allclose(y.sum(1), 1.0)
    # label mapping: each image's colour is its class colour
    colours = np.array(corpus.COLOURS[:3])
    np.testing.assert_array_equal(x[:, 4, 4, :], colours[y.argmax(1)])
    xt, yt = _all(data.test)
    assert xt.dtype == np.uint8
    assert yt.argmax(1).tolist() == [0, 0, 1, 1, 2, 2]
    assert data.fingerprint["split_sizes"]["train"] == 12 and len(data.fingerprint["sha256"]) == 16


def test_dataset_normalization_stats_from_train(tmp_path, corpus):
    root = corpus.write_folder(tmp_path / "ds", {"train": {"a": 2, "b": 2}})
    data = build_datasets(_config(root, normalization="dataset"), seed=0)
    colours = np.array([corpus.COLOURS[0]] * 2 + [corpus.COLOURS[1]] * 2, dtype=np.float64)
    np.testing.assert_allclose(data.preprocessing["mean"], colours.mean(0), atol=1e-4)
    np.testing.assert_allclose(data.preprocessing["std"], colours.std(0), atol=1e-3)
    x, _ = _all(data.train)
    normalised = normalize(x.astype("float32"), data.preprocessing).numpy()  # what the model's first layer does
    np.testing.assert_allclose(normalised[:, 2:-2, 2:-2].reshape(-1, 3).mean(0), 0.0, atol=1e-4)


def test_image_size_resizes(folder):
    data = build_datasets(_config(folder, image_size=16, normalization="tf"), seed=0)
    x, _ = next(iter(data.train))
    xt, _ = next(iter(data.test))
    assert x.shape[1:] == (16, 16, 3) and xt.shape[1:] == (16, 16, 3)
    assert data.preprocessing["image_size"] == [16, 16]


def test_augmentation_on_at_train_off_at_eval(tmp_path, corpus):
    rng = np.random.default_rng(0)
    from PIL import Image

    for split in ("train", "test"):
        for cls in ("a", "b"):
            (tmp_path / "ds" / split / cls).mkdir(parents=True)
            for i in range(4):
                Image.fromarray((rng.random((16, 16, 3)) * 255).astype("uint8")).save(tmp_path / "ds" / split / cls / f"{i}.png")
    plain = build_datasets(_config(tmp_path / "ds", deterministic=True), seed=1)
    aug = AugmentConfig(crop="pad", pad=4, horizontal_flip=True, erasing=0.5)
    augmented = build_datasets(_config(tmp_path / "ds", deterministic=True, augment=aug), seed=1)
    # same shuffle seed, so the same images in the same order; augmentation changes them
    xp, yp = _all(plain.train)
    xa, ya = _all(augmented.train)
    np.testing.assert_array_equal(yp, ya)
    assert not np.allclose(xp, xa)
    # eval: identical to plain decoding + normalisation, on both builds, every time
    for data in (plain, augmented):
        xt1, _ = _all(data.test)
        xt2, _ = _all(data.test)
        np.testing.assert_array_equal(xt1, xt2)
    np.testing.assert_array_equal(_all(plain.test)[0], _all(augmented.test)[0])
    # two train epochs differ (fresh augmentation each epoch)
    assert not np.allclose(_all(augmented.train)[0], _all(augmented.train)[0])


def test_mixup_labels_are_soft_and_sum_to_one(folder):
    data = build_datasets(_config(folder, augment=AugmentConfig(crop="none", horizontal_flip=False, mixup_alpha=0.4)), seed=0)
    _, y = _all(data.train)
    np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-5)
    assert ((y > 0.01) & (y < 0.99)).any()


def test_sample_weights_under_weights(unbalanced_folder):
    data = build_datasets(_config(unbalanced_folder, class_balance="weights", batch_size=32), seed=0)
    x, y, w = _all(data.train)
    expected = class_weights([12, 4, 2], 3)
    np.testing.assert_allclose(expected, [18 / 36, 18 / 12, 18 / 6], rtol=1e-6)
    np.testing.assert_allclose(w, expected[y.argmax(1)], rtol=1e-6)
    assert w.shape == (18,)


def test_oversample_balances_classes(unbalanced_folder):
    data = build_datasets(_config(unbalanced_folder, class_balance="oversample", batch_size=64, validation_fraction=0.0), seed=0)
    counts = np.zeros(3)
    for _ in range(10):
        _, y = _all(data.train)
        assert len(y) == 18
        counts += y.sum(0)
    assert counts.min() / counts.max() > 0.6, counts  # raw data: 2/12


def test_bad_files_skipped_and_counted(folder, corpus):
    bad = corpus.write_bad_files(folder / "train" / "a")
    data = build_datasets(_config(folder), seed=0)
    assert data.split_sizes["train"] == 18
    assert sorted(p for p, _ in data.bad_files) == sorted(str(p) for p in bad.values())
    assert data.fingerprint["bad_files"] == 3
    with pytest.raises(BadImageError, match=r"train/a/"):
        build_datasets(_config(folder, on_bad_image="error"), seed=0)


def test_tfds_datasets(tiny_tfds, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = DataConfig(dataset="kresnet_tiny_images", tfds_data_dir=tiny_tfds, download=False, batch_size=4,
                        validation_fraction=1 / 3, normalization="unit", augment=NO_AUG)
    data = build_datasets(config, seed=0)
    assert data.class_names == ["cat", "dog", "emu"] and data.split_sizes == {"train": 6, "test": 3, "val": 3}
    x, y = _all(data.val)
    assert x.shape == (3, 8, 8, 3) and sorted(y.argmax(1).tolist()) == [0, 1, 2]


def test_representative_and_inference_images(folder, corpus):
    config = _config(folder, normalization="dataset")
    reps = list(representative_images(config, 5).as_numpy_iterator())
    assert len(reps) == 5 and reps[0].dtype == np.uint8 and reps[0].shape == (8, 8, 3)
    assert len({tuple(r[0, 0]) for r in reps}) >= 2  # a mix of classes
    pairs = list(inference_images(config, "test").as_numpy_iterator())
    assert [int(y) for _, y in pairs] == [0, 0, 1, 1, 2, 2]
    np.testing.assert_array_equal(pairs[0][0][0, 0], corpus.COLOURS[0])
    # the eval pipeline delivers exactly these un-normalised pixels (the model normalises)
    data = build_datasets(config, seed=0)
    xt, _ = _all(data.test)
    np.testing.assert_array_equal(np.stack([p[0] for p in pairs]), xt)
    assert len(list(inference_images(config, "test", count=2))) == 2
    with pytest.raises(ValueError, match="'val'"):
        inference_images(config, "val")


def test_disk_cache_is_written_and_read_back_by_a_later_build(folder, tmp_path, corpus):
    config = _config(folder, cache="disk", cache_dir=str(tmp_path / "cache"))
    first = _all(build_datasets(config, seed=0).test)[0]
    names = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert any(name.startswith("ds-") and "-test-8x8" in name for name in names), names
    # Repaint the test images in place (same paths and labels: the same cache key). A new build
    # reads the decoded pixels from the disk cache, not from the files; a memory cache decodes anew.
    for path in (folder / "test").rglob("*.png"):
        corpus.write_image(path, (0, 0, 0))
    np.testing.assert_array_equal(_all(build_datasets(config, seed=0).test)[0], first)
    repainted = _all(build_datasets(_config(folder, cache="memory"), seed=0).test)[0]
    assert not np.allclose(repainted, first) and np.allclose(repainted, repainted.flat[0])


def _ramp_folder(root, side, per_class):
    """Identical ``side`` x ``side`` PNGs whose red channel ramps down the rows and green along the columns."""
    from PIL import Image

    rows, cols = np.meshgrid(np.linspace(0, 255, side), np.linspace(0, 255, side), indexing="ij")
    ramp = np.stack([rows, cols, np.full_like(rows, 128)], -1).round().astype("uint8")
    for split, count in (("train", per_class), ("test", 1)):
        for cls in ("a", "b", "c"):
            (root / split / cls).mkdir(parents=True)
            for i in range(count):
                Image.fromarray(ramp).save(root / split / cls / f"{i}.png")
    return root


def test_images_above_64_px_take_the_random_resized_crop_path(tmp_path):
    """80 px images, crop "auto": cached at 91 px, each training image a random window of area 8-100% and aspect 3/4-4/3."""
    from keras_resnet.data.augment import base_size, crop_mode

    aug = AugmentConfig(horizontal_flip=False)  # crop "auto", default resized_scale / resized_ratio
    assert crop_mode(aug, (80, 80)) == "resized" and base_size(aug, (80, 80)) == (91, 91)
    root = _ramp_folder(tmp_path / "ds", side=80, per_class=8)
    data = build_datasets(_config(root, deterministic=True, augment=aug), seed=0)
    assert data.image_size == (80, 80)
    x, _ = _all(data.train)
    xt, _ = _all(data.test)
    assert x.shape == (24, 80, 80, 3) and xt.shape == (3, 80, 80, 3)
    # The ramps turn a crop's extent into value differences; ratios to the whole (test) image
    # cancel whatever normalisation the pipeline applies.
    full_h = xt[0, -1, :, 0].mean() - xt[0, 0, :, 0].mean()
    full_w = xt[0, :, -1, 1].mean() - xt[0, :, 0, 1].mean()
    height = (x[:, -1, :, 0].mean(1) - x[:, 0, :, 0].mean(1)) / full_h
    width = (x[:, :, -1, 1].mean(1) - x[:, :, 0, 1].mean(1)) / full_w
    area, aspect = height * width, width / height
    assert area.min() >= 0.08 * 0.9 and area.max() <= 1.03, area
    assert aspect.min() >= 0.75 * 0.95 and aspect.max() <= 1.3333 * 1.05, aspect
    assert area.min() < 0.5 and area.std() > 0.1, area  # zoomed-in windows of random size, not a plain resize
    # inside a crop the ramp stays a ramp: rows evenly spaced, as one window resized
    profile = x[:, :, :, 0].mean(2)
    steps = np.diff(profile, axis=1)
    np.testing.assert_allclose(steps - steps.mean(1, keepdims=True), 0.0, atol=0.02 * np.abs(full_h))
    # the model-size eval images are the whole image, untouched by augmentation
    np.testing.assert_allclose(xt[0, :, 0, 0] - xt[0, 0, 0, 0], np.linspace(0, 1, 80) * full_h, atol=0.01 * np.abs(full_h))


def _noise_folder(root, per_class=4, size=16, classes=("a", "b", "c")):
    """Random-noise PNGs (so crops, flips and erasing visibly change them)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in classes:
        (root / "train" / cls).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray((rng.random((size, size, 3)) * 255).astype("uint8")).save(root / "train" / cls / f"{i}.png")
    return root


def _batches(ds, count):
    it = iter(ds)
    return [tuple(np.asarray(t) for t in next(it)) for _ in range(count)]


def _assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert len(x) == len(y)
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)


AUG_ALL = AugmentConfig(crop="pad", pad=4, horizontal_flip=True, rotation=0.1, erasing=0.5, mixup_alpha=0.4)


@pytest.mark.parametrize("class_balance", ["none", "weights", "oversample"])
def test_train_epoch_is_a_function_of_seed_and_epoch(tmp_path, class_balance):
    import tensorflow as tf

    root = _noise_folder(tmp_path / "ds", per_class=4)
    config = _config(root, deterministic=True, augment=AUG_ALL, class_balance=class_balance, shuffle_buffer=6)
    data = build_datasets(config, seed=3)
    steps = data.steps_per_epoch
    assert steps == 3  # 12 images, batch 4
    from_zero = _batches(data.train_from_epoch(0), 3 * steps)
    # epoch 2 started directly, from a new build in a "new process" (other global seed): the same batches
    tf.random.set_seed(12345)
    again = build_datasets(config, seed=3)
    _assert_same_batches(_batches(again.train_from_epoch(2), steps), from_zero[2 * steps :])
    _assert_same_batches(_batches(data.train_from_epoch(1), 2 * steps), from_zero[steps:])
    _assert_same_batches(_batches(again.train_stream.epoch(1), steps), from_zero[steps : 2 * steps])
    # epochs differ from each other (order and augmentation), and from another seed
    epoch = [np.concatenate([b[0] for b in from_zero[e * steps : (e + 1) * steps]]) for e in range(3)]
    assert not np.allclose(epoch[0], epoch[1]) and not np.allclose(epoch[1], epoch[2])
    other = build_datasets(config, seed=4)
    assert not np.allclose(np.concatenate([b[0] for b in _batches(other.train_from_epoch(0), steps)]), epoch[0])
    if class_balance == "weights":
        assert all(len(b) == 3 for b in from_zero)


def _mirrored_by_image(augmented, plain, epoch):
    """{image bytes: [mirrored?, ...]} of one epoch, against an unaugmented build of the same seed."""
    steps = augmented.steps_per_epoch
    batches = _batches(augmented.train_from_epoch(epoch), steps)
    assert all(b[0].dtype == np.uint8 for b in batches)  # mirroring keeps pixels exact
    x = np.concatenate([b[0] for b in batches])
    reference = np.concatenate([b[0] for b in _batches(plain.train_from_epoch(epoch), steps)])
    seen = {}
    for image, original in zip(x, reference):
        mirrored = np.array_equal(image, original[:, ::-1])
        assert mirrored or np.array_equal(image, original)
        seen.setdefault(original.tobytes(), []).append(mirrored)
    return seen


@pytest.mark.parametrize("class_balance", ["none", "oversample"])
def test_alternate_flips_mirror_each_image_every_other_epoch(tmp_path, class_balance):
    """flip_mode="alternate": one coin per image in epoch 0, then the opposite each epoch; resumable."""
    import tensorflow as tf

    root = _noise_folder(tmp_path / "ds", per_class=8)
    alternate = AugmentConfig(crop="none", horizontal_flip=True, flip_mode="alternate")
    config = _config(root, deterministic=True, augment=alternate, class_balance=class_balance, batch_size=8)
    data = build_datasets(config, seed=3)
    plain = build_datasets(config.replace(augment=NO_AUG), seed=3)  # the same order, unaugmented
    epochs = [_mirrored_by_image(data, plain, epoch) for epoch in range(4)]
    first = {}
    for epoch, seen in enumerate(epochs):
        for image, mirrored in seen.items():
            assert len(set(mirrored)) == 1  # an image drawn twice in one epoch (oversample): mirrored alike
            first.setdefault(image, mirrored[0] != (epoch % 2 == 1))
            assert mirrored[0] == (first[image] != (epoch % 2 == 1)), epoch  # the other way every epoch
    assert 0 < sum(first.values()) < len(first)  # one coin per image, not one for the epoch
    # epoch 3 started directly in a "new process" (other global seed): the same batches
    tf.random.set_seed(999)
    again = build_datasets(config, seed=3)
    steps = data.steps_per_epoch
    _assert_same_batches(_batches(again.train_from_epoch(3), steps), _batches(data.train_from_epoch(3), steps))
    # another run seed draws other coins
    other = _mirrored_by_image(build_datasets(config, seed=4), build_datasets(config.replace(augment=NO_AUG), seed=4), 0)
    assert any(other[image][0] != first[image] for image in other)


def test_train_cardinality_and_steps(tmp_path):
    import tensorflow as tf

    root = _noise_folder(tmp_path / "ds", per_class=5)  # 15 images, batch 4: 4 steps, the last of 3
    data = build_datasets(_config(root, deterministic=True, augment=AugmentConfig(crop="pad", pad=2)), seed=0)
    assert data.steps_per_epoch == 4
    assert int(data.train.cardinality()) == 4
    assert int(data.train_from_epoch(3).cardinality()) == int(tf.data.INFINITE_CARDINALITY)
    sizes = [len(b[1]) for b in _batches(data.train_from_epoch(0), 8)]
    assert sizes == [4, 4, 4, 3] * 2
    # a per-epoch cap keeps epochs aligned: epoch 1 capped to 2 batches is the start of the full epoch 1
    capped = _batches(data.train_from_epoch(0, steps_per_epoch=2), 4)
    _assert_same_batches(capped[2:], _batches(data.train_from_epoch(1), 2))
    # each full epoch holds every training image exactly once (labels: 5 per class)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in _batches(data.train_from_epoch(5), 4)]).sum(0), [5, 5, 5])
    # `train` is one epoch, a new one on each iteration
    first, second = _all(data.train), _all(data.train)
    assert len(first[0]) == 15 and not np.allclose(first[0], second[0])
    with pytest.raises(ValueError, match=r"steps_per_epoch must be None or in \[1, 4\].*steps_per_epoch=5"):
        data.train_from_epoch(0, steps_per_epoch=5)
    with pytest.raises(ValueError, match="start_epoch=-1"):
        data.train_from_epoch(-1)


@pytest.mark.parametrize("cache", ["memory", "disk", "none"])
def test_decoded_images_are_cached_once_for_all_epochs(tmp_path, cache):
    """After one epoch the image files are deleted: cached epochs must not read them again."""
    import tensorflow as tf

    root = _noise_folder(tmp_path / "ds", per_class=4)
    config = _config(root, cache=cache, cache_dir=str(tmp_path / "cache"), on_bad_image="error", deterministic=True,
                     augment=AugmentConfig(crop="pad", pad=2))
    data = build_datasets(config, seed=0)
    stream = iter(data.train_from_epoch(0))
    for _ in range(data.steps_per_epoch):  # epoch 0 decodes the files (and fills the cache)
        next(stream)
    for path in (root / "train").rglob("*.png"):
        path.unlink()
    if cache == "none":
        with pytest.raises(tf.errors.NotFoundError):
            _batches(data.train_from_epoch(4), 1)
        return
    for _ in range(2 * data.steps_per_epoch):
        next(stream)
    assert len(_batches(data.train_from_epoch(4), data.steps_per_epoch)) == 3
    assert len(_all(data.train)[0]) == 12


def test_val_and_test_splits_run_without_the_tfdata_autotune_thread(folder):
    # Deleting an iterator joins tf.data's autotune thread, which under load waited for its next
    # wake-up (seconds), and Keras makes a new validation iterator every epoch: BENCHMARKS.md,
    # "tf.data's autotune thread". The training stream and splits decoded on every pass keep
    # TensorFlow's default, as measured there.
    from keras_resnet.data.inference import evaluation_dataset

    data = build_datasets(_config(folder, validation_fraction=1 / 3), seed=0)
    for name, ds in {"val": data.val, "test": data.test}.items():
        assert ds.options().autotune.enabled is False, name
        assert ds.options().experimental_optimization.map_parallelization is True, name
    assert data.test.map(lambda x, y: (x, y)).batch(2).options().autotune.enabled is False  # kept when wrapped
    default = {
        "train": data.train,
        "train_from_epoch": data.train_from_epoch(0),
        "evaluation_dataset": evaluation_dataset(_config(folder), "test", (8, 8)).dataset,
    }
    uncached = build_datasets(_config(folder, validation_fraction=1 / 3, cache="none"), seed=0)
    default.update(val_uncached=uncached.val, test_uncached=uncached.test)
    for name, ds in default.items():
        assert ds.options().autotune.enabled is not False, name
