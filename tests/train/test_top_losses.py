"""Top losses: exactly the highest-loss examples of a known set, with the paths of their files,
through `evaluate_run` too (which also writes calibration figures)."""

import csv
import io
import json
import logging

import numpy as np
import pytest
from labelled_folder import NAMES, run_copy, write_folder
from PIL import Image
from tiny_run import tiny_run_fixture

from keras_resnet import runs
from keras_resnet.train.evaluate import evaluate_run
from keras_resnet.train.top_losses import (
    TopLosses,
    safe_cell,
    top_loss_indices,
    top_losses_csv,
)

# p_true per row: .9, .2, .6, .05, .6, .99, .3 -> losses in order 3, 1, 6, 2, 4, 0, 5 (2 and 4 tie: earlier first)
PROBS = np.array([
    [0.90, 0.10], [0.80, 0.20], [0.40, 0.60], [0.95, 0.05], [0.60, 0.40], [0.01, 0.99], [0.70, 0.30],
])
LABELS = np.array([0, 1, 1, 1, 0, 1, 1])


def test_the_highest_losses_of_a_known_set_highest_first():
    assert top_loss_indices(PROBS, LABELS, 3).tolist() == [3, 1, 6]
    assert top_loss_indices(PROBS, LABELS, 5).tolist() == [3, 1, 6, 2, 4]  # a tie keeps split order
    assert top_loss_indices(PROBS, LABELS, 100).tolist() == [3, 1, 6, 2, 4, 0, 5]


@pytest.mark.parametrize("batch", [1, 2, 3, 7])
def test_the_collector_over_batches_keeps_the_same_examples_and_their_images(batch):
    images = np.arange(len(LABELS), dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    collector = TopLosses(4)
    for start in range(0, len(LABELS), batch):
        collector(images[start : start + batch], PROBS[start : start + batch], LABELS[start : start + batch])
    rows = collector.rows()
    assert [r.index for r in rows] == [3, 1, 6, 2]
    assert [int(r.image[0, 0, 0]) for r in rows] == [3, 1, 6, 2]  # each image travels with its example
    assert rows[0].loss == pytest.approx(-np.log(0.05)) and rows[0].predicted == 0 and rows[0].true == 1
    assert rows[0].probability == pytest.approx(0.95) and rows[0].true_probability == pytest.approx(0.05)


def test_csv_cells_a_spreadsheet_would_run_are_neutralised():
    assert [safe_cell(v) for v in ("=1+1", "+x", "-2", "@SUM(A1)", "cat", "", None)] == [
        "'=1+1", "'+x", "'-2", "'@SUM(A1)", "cat", "", ""]
    collector = TopLosses(2)
    collector(np.zeros((2, 2, 2, 3), np.uint8), PROBS[:2], LABELS[:2])
    text = top_losses_csv(collector.rows(), ["=cmd|' /C calc'!A0", "@dog"], paths=["-x.jpg", "a.jpg"])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["path"] == "a.jpg" and rows[0]["true"] == "'@dog" and rows[0]["predicted"] == "'=cmd|' /C calc'!A0"
    assert rows[1]["path"] == "'-x.jpg"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return tiny_run_fixture(tmp_path_factory)


def test_evaluate_run_writes_the_top_losses_with_the_paths_of_their_files(tiny_run, tmp_path):
    data = tmp_path / "data"
    wrong = write_folder(data)
    run_dir = run_copy(tiny_run, tmp_path / "run")
    metrics = evaluate_run(run_dir, data_dir=str(data), top_losses=5)
    rows = list(csv.DictReader((run_dir / "top_losses.csv").open()))
    assert len(rows) == 5 and (run_dir / "top_losses.png").is_file()
    assert {r["path"] for r in rows[:3]} == {str(p) for p in wrong}  # known in advance
    assert all(r["true"] == NAMES[2] and r["predicted"] == NAMES[0] for r in rows[:3])
    # independently: the model on every test file, the five highest losses, by path
    run = runs.load_run(run_dir)
    files = sorted((data / "test").rglob("*.png"))
    pixels = np.stack([np.asarray(Image.open(f)) for f in files])
    labels = np.array([NAMES.index(f.parent.name) for f in files])
    probs = run.model.predict(pixels, verbose=0)
    losses = -np.log(np.maximum(probs[np.arange(len(files)), labels], 1e-30))
    expected = [str(files[i]) for i in np.argsort(-losses, kind="stable")[:5]]
    assert [r["path"] for r in rows] == expected
    loss_of = {str(f): loss for f, loss in zip(files, losses)}
    for r in rows:
        assert float(r["loss"]) == pytest.approx(loss_of[r["path"]], rel=1e-4, abs=1e-6)
    # calibration figures ride along
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert {"ece", "nll", "reliability"} <= set(saved) and saved["ece"] == metrics["ece"]
    assert (run_dir / "calibration.png").is_file() and (run_dir / "confusion_matrix.png").is_file()
    assert metrics["top_losses"]["csv"] == str(run_dir / "top_losses.csv")


def test_a_file_that_fails_to_decode_drops_the_paths_rather_than_misplace_them(tiny_run, tmp_path, caplog):
    data = tmp_path / "data"
    write_folder(data, mislabelled=1)
    # passes the listing's quick check (PNG signature, IEND marker) but does not decode
    (data / "test" / NAMES[1] / "a_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage!" * 20 + b"IEND\xaeB`\x82")
    run_dir = run_copy(tiny_run, tmp_path / "run")
    with caplog.at_level(logging.WARNING):
        metrics = evaluate_run(run_dir, data_dir=str(data), top_losses=3)
    assert metrics["num_examples"] == 13  # 12 + 1 listed, the corrupt one skipped
    rows = list(csv.DictReader((run_dir / "top_losses.csv").open()))
    assert rows[0]["path"] == "" and rows[0]["index"].isdigit()
    assert "did not decode" in caplog.text


def test_no_top_losses_without_writing_or_when_zero_are_asked(tiny_run, tmp_path):
    data = tmp_path / "data"
    write_folder(data, mislabelled=0)
    run_dir = run_copy(tiny_run, tmp_path / "run")
    evaluate_run(run_dir, data_dir=str(data), top_losses=0)
    assert not (run_dir / "top_losses.csv").exists() and (run_dir / "metrics.json").exists()
    with pytest.raises(ValueError, match="top_losses must be an integer >= 0"):
        evaluate_run(run_dir, data_dir=str(data), top_losses=-1)
