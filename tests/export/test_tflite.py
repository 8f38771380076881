"""TFLite artifacts: uint8 pixel input at the model's size, quantised internals, LiteRT interpreter."""

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from keras_resnet.export.runners import TFLiteRunner, load_keras_runner
from keras_resnet.export.tflite import check_quantize, convert_to_tflite


@pytest.mark.parametrize("quantize", ["none", "float16", "dynamic", "int8"])
def test_input_is_uint8_pixels_and_output_probabilities(exports, tiny_run, quantize):
    path = exports[("tflite", quantize)].path
    runner = TFLiteRunner(path)
    assert runner.input_size == (32, 32) and runner.labels == ["red", "green", "blue"]
    detail = runner.runner.get_input_details()["images"]
    assert detail["dtype"] == np.uint8 and list(detail["shape_signature"]) == [-1, 32, 32, 3]
    probs = runner.predict(tiny_run.images)  # whole batch: the batch dimension is resized
    keras_probs = load_keras_runner(tiny_run.run_dir).predict(tiny_run.images)
    np.testing.assert_array_equal(probs.argmax(1), keras_probs.argmax(1))
    tolerance = {"none": 1e-5, "float16": 1e-3, "dynamic": 5e-3, "int8": 5e-2}[quantize]
    np.testing.assert_allclose(probs, keras_probs, atol=tolerance)


def _tensor_types(path):
    interpreter = Interpreter(model_path=str(path))
    return {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}


def test_int8_model_computes_in_int8_and_float32_does_not(exports):
    assert "int8" in _tensor_types(exports[("tflite", "int8")].path)
    assert "int8" not in _tensor_types(exports[("tflite", "none")].path)
    assert "float16" in _tensor_types(exports[("tflite", "float16")].path)


def test_other_image_sizes_are_resized_on_the_host(exports, tiny_run):
    runner = TFLiteRunner(exports[("tflite", "none")].path)
    big = np.repeat(np.repeat(tiny_run.images[:4], 2, axis=1), 2, axis=2)
    probs = runner.predict_many(list(big))
    np.testing.assert_array_equal(probs.argmax(1), tiny_run.labels[:4])


def test_int8_needs_representative_images_and_quantize_is_checked(tiny_run):
    runner = load_keras_runner(tiny_run.run_dir)
    with pytest.raises(ValueError, match="representative"):
        convert_to_tflite(runner.model, (32, 32), runner.labels, "int8")
    with pytest.raises(ValueError, match="quantize must be one of"):
        check_quantize("int4")
