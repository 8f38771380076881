"""The SavedModel's serving signatures equal the Keras model on the same images."""

import numpy as np
import pytest
import tensorflow as tf

from keras_resnet.export.runners import SavedModelRunner, load_keras_runner


@pytest.fixture(scope="module")
def saved(exports):
    return tf.saved_model.load(str(exports[("savedmodel", "none")].path))


def test_signatures_and_their_inputs(saved):
    assert {"serving_default", "serve_bytes"} <= set(saved.signatures)
    (images,) = saved.signatures["serving_default"].structured_input_signature[1].values()
    assert images.dtype == tf.uint8 and images.shape.as_list() == [None, None, None, 3]
    (encoded,) = saved.signatures["serve_bytes"].structured_input_signature[1].values()
    assert encoded.dtype == tf.string and encoded.shape.as_list() == [None]


def test_each_weight_is_stored_once(exports, tiny_run):
    import keras

    model = keras.models.load_model(tiny_run.run_dir / "model.keras", compile=False)
    checkpoint = tf.train.load_checkpoint(str(exports[("savedmodel", "none")].path / "variables" / "variables"))
    stored = [k for k in checkpoint.get_variable_to_shape_map() if k != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    assert len(stored) == len(model.weights)


def test_raw_uint8_signature_equals_keras(saved, tiny_run):
    keras_probs = load_keras_runner(tiny_run.run_dir).predict(tiny_run.images)
    out = saved.signatures["serving_default"](images=tf.constant(tiny_run.images))
    np.testing.assert_allclose(out["probabilities"].numpy(), keras_probs, atol=1e-5)
    assert out["top_k_indices"].shape == (len(tiny_run.images), 3)  # top_k 5 capped at 3 classes
    top1 = [label.decode() for label in out["top_k_labels"].numpy()[:, 0]]
    assert top1 == [["red", "green", "blue"][i] for i in keras_probs.argmax(1)]
    assert sorted(set(top1)) == ["blue", "green", "red"]  # predictions are not trivial


def test_jpeg_bytes_signature_equals_keras_on_decoded_pixels(saved, tiny_run):
    keras_probs = load_keras_runner(tiny_run.run_dir).predict(tiny_run.images)
    encoded = [f.read_bytes() for f in tiny_run.files]
    out = saved.signatures["serve_bytes"](image_bytes=tf.constant(encoded))
    np.testing.assert_allclose(out["probabilities"].numpy(), keras_probs, atol=1e-5)
    np.testing.assert_array_equal(out["top_k_indices"].numpy()[:, 0], keras_probs.argmax(1))


def test_png_bytes_of_another_size_are_resized_like_keras(saved, tiny_run, tmp_path):
    from PIL import Image

    big = np.repeat(np.repeat(tiny_run.images[:2], 2, axis=1), 2, axis=2)  # 64x64
    files = []
    for i, img in enumerate(big):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        files.append((tmp_path / f"{i}.png").read_bytes())
    keras_probs = load_keras_runner(tiny_run.run_dir).predict(big)
    from_bytes = saved.signatures["serve_bytes"](image_bytes=tf.constant(files))["probabilities"].numpy()
    from_pixels = saved.signatures["serving_default"](images=tf.constant(big))["probabilities"].numpy()
    np.testing.assert_allclose(from_bytes, keras_probs, atol=1e-5)
    np.testing.assert_allclose(from_pixels, keras_probs, atol=1e-5)


def test_runner_reads_labels_from_inside_the_savedmodel(exports):
    runner = SavedModelRunner(exports[("savedmodel", "none")].path)
    assert runner.labels == ["red", "green", "blue"] and runner.input_size is None


def test_labels_must_match_model_outputs(tiny_run, tmp_path):
    from keras_resnet.data.preprocess import load_preprocessing
    from keras_resnet.export.serving import write_savedmodel

    model = load_keras_runner(tiny_run.run_dir).model
    with pytest.raises(ValueError, match="2 classes but the model outputs 3"):
        write_savedmodel(model, load_preprocessing(tiny_run.run_dir), ["a", "b"], tmp_path / "sm")
