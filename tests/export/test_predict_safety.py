"""predict with hostile input: SavedModels from elsewhere, file names and labels a terminal or a spreadsheet would run."""

import csv
import io
import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from keras_resnet.cli import main
from keras_resnet.export.predict import Prediction, format_predictions
from keras_resnet.export.runners import load_runner, savedmodel_notice


def _foreign_savedmodel(path: Path, labels=("cat", "dog")) -> Path:
    """A SavedModel written with plain TensorFlow (not `kresnet export`) that still fits predict's contract."""
    import tensorflow as tf

    class Uniform(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
        def serve(self, images):
            n = tf.shape(images)[0]
            return {"probabilities": tf.fill([n, len(labels)], 1.0 / len(labels))}

    module = Uniform()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    (path / "labels.txt").write_text("".join(f"{name}\n" for name in labels))
    return path


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    return _foreign_savedmodel(tmp_path_factory.mktemp("models") / "foreign")


def test_a_savedmodel_not_written_by_kresnet_gets_a_one_line_notice(foreign, tmp_path, caplog):
    notice = savedmodel_notice(foreign)
    assert notice.startswith(f"Notice: SavedModel {foreign} was not written by `kresnet export`")
    assert "load only SavedModels you trust" in notice and "\n" not in notice
    with caplog.at_level(logging.WARNING):
        runner = load_runner(foreign)
    assert runner.kind == "savedmodel" and caplog.text.count("was not written by `kresnet export`") == 1
    # kresnet's own export writes preprocessing.json and parity.json into the directory: no notice
    (foreign / "preprocessing.json").write_text("{}")
    try:
        assert savedmodel_notice(foreign) is None
    finally:
        (foreign / "preprocessing.json").unlink()


def test_predict_cli_gives_the_notice_once_and_still_predicts(foreign, tmp_path, caplog):
    """The notice is a logging warning: without a logging set-up (the command line) Python writes it to stderr."""
    image = tmp_path / "x.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(image)
    with caplog.at_level(logging.WARNING):
        result = CliRunner().invoke(main, ["predict", str(foreign), str(image), "--top-k", "1"])
    assert result.exit_code == 0, result.output
    assert [r.levelname for r in caplog.records if "was not written by `kresnet export`" in r.getMessage()] == ["WARNING"]
    assert "was not written" not in result.stdout and "x.png" in result.stdout


def test_predict_help_says_a_savedmodel_is_a_program():
    text = " ".join(CliRunner().invoke(main, ["predict", "--help"]).output.split())
    assert "A SavedModel is a program" in text and "Load only models you trust" in text
    assert "safe mode" in text and "KRESNET_MAX_IMAGE_PIXELS" in text


def _hostile_predictions():
    return [
        Prediction(Path("=HYPERLINK(evil).jpg"), top=[("@SUM(A1)", 0, 0.75), ("-1+2", 1, 0.25)]),
        Prediction(Path("photos/cat\x1b[2J\r.jpg"), top=[("cat\x07", 0, 0.5)]),
        Prediction(Path("+broken.jpg"), error="Cannot decode image +broken.jpg: bad"),
    ]


def test_csv_output_neutralises_formulas_and_escapes_control_characters():
    rows = list(csv.DictReader(io.StringIO(format_predictions(_hostile_predictions(), "csv"))))
    assert rows[0]["path"] == "'=HYPERLINK(evil).jpg" and rows[0]["label"] == "'@SUM(A1)"
    assert rows[1]["label"] == "'-1+2"
    assert rows[2]["path"] == "photos/cat\\x1b[2J\\r.jpg" and rows[2]["label"] == "cat\\x07"
    assert rows[3]["path"] == "'+broken.jpg" and rows[3]["error"] == "Cannot decode image +broken.jpg: bad"
    assert rows[0]["probability"] == "0.750000"  # numbers are left as numbers


def test_table_escapes_control_characters_and_json_keeps_the_exact_path():
    table = format_predictions(_hostile_predictions(), "table")
    assert "\x1b" not in table and "\r" not in table and "\x07" not in table
    assert "photos/cat\\x1b[2J\\r.jpg" in table and "cat\\x07 (0.500)" in table
    text = format_predictions(_hostile_predictions(), "json")
    assert "\x1b" not in text  # JSON escapes control characters itself
    assert json.loads(text)[1]["path"] == "photos/cat\x1b[2J\r.jpg"
