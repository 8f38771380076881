"""`evaluate_run`: the model carries its preprocessing, so evaluation reads only the evaluated split."""

import shutil

import numpy as np
import pytest
from PIL import Image
from synthetic import tiny_config, write_image_folder

from keras_resnet import runs
from keras_resnet.data import sources
from keras_resnet.train.evaluate import evaluate_run
from keras_resnet.train.trainer import train


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A 1-epoch run trained with normalization 'dataset' on an image folder."""
    import dataclasses

    root = tmp_path_factory.mktemp("evaluate_run")
    images = write_image_folder(root / "images")
    base = tiny_config(root / "run", epochs=1, evaluate_split="none")
    data = dataclasses.replace(base.data, dataset=None, data_dir=str(images), normalization="dataset",
                               validation_fraction=0.25, cache="none")
    run_dir = train(dataclasses.replace(base, data=data), log=lambda *_: None)
    return run_dir, images


def darkened_copy(images, target):
    """The same test images; train images darkened to a quarter (very different channel statistics)."""
    shutil.copytree(images / "test", target / "test")
    for path in (images / "train").rglob("*.png"):
        out = target / path.relative_to(images)
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(Image.open(path)) // 4).save(out)
    return target


def test_evaluation_uses_the_models_statistics_not_the_folders(folder_run, tmp_path, monkeypatch):
    run_dir, images = folder_run
    decoded_splits = []
    original = sources.Source.encoded_dataset

    def recording(self, split):
        decoded_splits.append(split)
        return original(self, split)

    monkeypatch.setattr(sources.Source, "encoded_dataset", recording)
    on_original = evaluate_run(run_dir, write=False)
    on_darkened = evaluate_run(run_dir, data_dir=str(darkened_copy(images, tmp_path / "dark")), write=False)
    assert decoded_splits == ["test", "test"]  # never the train split
    for key in ("num_examples", "loss", "top1", "top5", "confusion_matrix", "per_class"):
        assert on_darkened[key] == on_original[key], key
    assert on_original["num_examples"] == 6


def test_evaluation_matches_the_models_predictions_on_raw_pixels(folder_run):
    run_dir, images = folder_run
    run = runs.load_run(run_dir)
    files = sorted((images / "test").rglob("*.png"))
    pixels = np.stack([np.asarray(Image.open(f)) for f in files])
    labels = np.array([run.labels.index(f.parent.name) for f in files])
    probs = run.model.predict(pixels, verbose=0)
    metrics = evaluate_run(run_dir, write=False)
    assert metrics["top1"] == pytest.approx(float((probs.argmax(1) == labels).mean()))
    assert metrics["loss"] == pytest.approx(float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1)).mean()), rel=1e-5)


def test_val_split_and_a_model_without_its_run(folder_run, tmp_path):
    run_dir, images = folder_run
    assert evaluate_run(run_dir, split="val", write=False)["num_examples"] == 6  # the same seeded holdout (0.25 of 24)
    shutil.copy(run_dir / "model.keras", tmp_path / "alone.keras")
    with pytest.raises(FileNotFoundError, match="--dataset and/or --data-dir"):
        evaluate_run(tmp_path / "alone.keras")
    alone = evaluate_run(tmp_path / "alone.keras", data_dir=str(images))
    assert alone["top1"] == evaluate_run(run_dir, write=False)["top1"]
    assert (tmp_path / "metrics.json").is_file()
