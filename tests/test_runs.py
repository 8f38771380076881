"""`Run` / `load_run`: one loader for a trained model and what was recorded beside it."""

import os
import shutil

import numpy as np
import pytest
from tiny_run import CLASSES, legacy_copy, tiny_run_fixture

from keras_resnet import runs
from keras_resnet.data.preprocess import load_preprocessing, normalize
from keras_resnet.preprocessing import has_preprocessing


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """See `tiny_run.build_tiny_run`."""
    return tiny_run_fixture(tmp_path_factory)


def test_load_run_reads_model_labels_and_spec_once(tiny_run):
    run = runs.load_run(tiny_run.run_dir)
    assert run.labels == CLASSES and run.image_size == (32, 32) and run.num_classes == 3
    assert run.spec == load_preprocessing(tiny_run.run_dir) and not run.legacy
    assert has_preprocessing(run.model)
    assert runs.load_run(tiny_run.run_dir / "model.keras").model_path == run.model_path


def test_model_copied_out_of_its_run_keeps_labels_and_preprocessing(tiny_run, tmp_path):
    shutil.copy(tiny_run.run_dir / "model.keras", tmp_path / "m.keras")
    run = runs.load_run(tmp_path / "m.keras")  # nothing beside it: labels and spec come from the file
    assert run.labels == CLASSES and run.spec == load_preprocessing(tiny_run.run_dir)
    expected = runs.load_run(tiny_run.run_dir).model.predict(tiny_run.images, verbose=0)
    np.testing.assert_allclose(run.model.predict(tiny_run.images, verbose=0), expected, atol=1e-6)


def test_model_without_metadata_gets_class_indices(tiny_run, tmp_path):
    import keras

    keras.saving.load_model(tiny_run.run_dir / "model.keras").save(tmp_path / "plain.keras")
    run = runs.load_run(tmp_path / "plain.keras")
    assert run.labels == ["0", "1", "2"]
    assert run.spec["mode"] == "dataset" and run.spec["image_size"] == [32, 32]
    np.testing.assert_allclose(run.spec["mean"], load_preprocessing(tiny_run.run_dir)["mean"], rtol=1e-6)


def test_labels_must_match_the_outputs(tiny_run, tmp_path):
    os.link(tiny_run.run_dir / "model.keras", tmp_path / "model.keras")
    (tmp_path / "labels.txt").write_text("a\nb\n")
    with pytest.raises(ValueError, match=r"labels.txt lists 2 classes but .* outputs 3"):
        runs.load_run(tmp_path / "model.keras")
    (tmp_path / "weights.h5").write_bytes(b"")
    with pytest.raises(ValueError, match="run directory or a .keras model"):
        runs.load_run(tmp_path / "weights.h5")


def test_truncated_model_is_reported_as_corrupt(tiny_run, tmp_path):
    data = (tiny_run.run_dir / "model.keras").read_bytes()
    (tmp_path / "model.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a valid .keras"):
        runs.load_run(tmp_path)


def test_legacy_run_is_wrapped_and_predicts_like_the_old_pipeline(tiny_run, tmp_path):
    """A run saved before models carried preprocessing: raw pixels in, same outputs as normalise-then-model."""
    import keras

    folder = legacy_copy(tiny_run, tmp_path / "legacy")
    run = runs.load_run(folder)
    assert run.legacy and has_preprocessing(run.model)
    old_model = keras.saving.load_model(folder / "model.keras", compile=False)
    old = old_model.predict(np.asarray(normalize(tiny_run.images.astype("float32"), run.spec)), verbose=0)
    new = runs.load_run(tiny_run.run_dir).model.predict(tiny_run.images, verbose=0)
    np.testing.assert_allclose(run.model.predict(tiny_run.images, verbose=0), old, atol=1e-6)
    np.testing.assert_allclose(new, old, atol=1e-5)  # the preprocessing layer == the old normalisation
    (folder / "preprocessing.json").unlink()
    with pytest.raises(FileNotFoundError, match="takes normalised input"):
        runs.load_run(folder)
