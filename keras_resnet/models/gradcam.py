"""Grad-CAM (Selvaraju et al. 2017): where in the image a model finds the evidence for a class.

The heat map of class ``c`` is ``ReLU(sum_k alpha_k * A_k)``: ``A`` is the output of
the last convolutional stage, ``alpha_k`` the spatial mean of ``d score_c / d A_k``.
It is upsampled (bilinear) to the input size and scaled to [0, 1] per image.

* **Which layer**: found by the layer naming (`keras_resnet.models.naming`), the same
  for kresnet models and ``keras.applications`` ResNets: ``post_relu`` of
  pre-activation (v2) models, else the last stage's last block output
  ``conv{k}_block{b}_out`` (``conv4_block3_out`` of a CIFAR ResNet-20,
  ``conv5_block3_out`` of ResNet-50). A model with no such names falls back to its
  last layer with a 4-D output (its preprocessing layer excepted).
* **Which score**: the class's logit. When the model has a softmax ``Dense``
  classifier (named ``predictions``, or as its last layer) the logit is recomputed
  from that layer's input and weights, also when layers that keep the classes
  follow it (a calibrated model's temperature: same maps as the model it wraps). A
  model ending in a linear layer is read as giving logits; any other model ending
  in a softmax uses ``log p_c - mean_k log p_k``, the logit up to the constant
  softmax ignores.
* **Nested models**: a backbone inside a wrapper (a legacy model behind its
  preprocessing wrapper, a ``keras.applications`` base inside a transfer model) is
  traced through: the wrapper's part before the nested model, the nested model
  (recursively) and the part after it are run in turn under one gradient tape.

Only Keras models have the gradients this needs: SavedModel, TFLite and ONNX exports
do not (explain with the ``.keras`` model they were exported from).

Example:
    >>> maps = grad_cam(model, uint8_images)          # [N, H, W] in [0, 1], predicted classes
    >>> maps = grad_cam(model, uint8_images, class_index=3)
"""

from __future__ import annotations

import numpy as np

from keras_resnet.models.naming import PREDICTIONS, leaf_layers, stage_of

PREPROCESSING_LAYER = "preprocessing"
V2_FEATURES = "post_relu"


def _rank4(layer) -> bool:
    try:
        output = layer.output
    except (AttributeError, ValueError):
        return False
    return not isinstance(output, (list, tuple)) and len(output.shape) == 4


def find_gradcam_layer(model):
    """The layer Grad-CAM reads: the last convolutional stage's output (see the module docstring).

    Args:
        model: A Keras model (layers of nested models are searched too).

    Returns:
        The layer.

    Raises:
        ValueError: the model has no layer with a 4-D output.
    """
    leaves = list(leaf_layers(model))
    named = [
        layer for layer in leaves
        if layer.name == V2_FEATURES or (layer.name.endswith("_out") and stage_of(layer.name) is not None)
    ]
    if named:
        return named[-1]
    fallback = [layer for layer in leaves if layer.name != PREPROCESSING_LAYER and _rank4(layer)]
    fallback = [layer for layer in fallback if type(layer).__name__ != "InputLayer"]
    if not fallback:
        raise ValueError(
            f"Model {model.name!r} has no convolutional feature map for Grad-CAM: no conv{{k}}_block{{b}}_out or "
            "post_relu layer and no other layer with a 4-D (N, H, W, C) output."
        )
    return fallback[-1]


def _contains(layer, target) -> bool:
    if layer is target:
        return True
    return any(_contains(inner, target) for inner in getattr(layer, "layers", None) or [])


def _softmax_dense(model):
    """The classifier: a softmax Dense layer of ``model`` named ``predictions``, else its last layer if it is one."""
    import keras

    def is_softmax_dense(layer):
        return isinstance(layer, keras.layers.Dense) and getattr(layer, "activation", None) is keras.activations.softmax

    named = [layer for layer in model.layers if layer.name == PREDICTIONS and is_softmax_dense(layer)]
    if named:
        return named[-1]
    return model.layers[-1] if is_softmax_dense(model.layers[-1]) else None


def _logits(head, pooled):
    import keras

    logits = keras.ops.matmul(pooled, head.kernel)
    return logits + head.bias if head.use_bias else logits


def _outputs_logits(model) -> bool:
    import keras

    activation = getattr(model.layers[-1], "activation", None)
    return activation is keras.activations.linear


def _tracer(model, target):
    """A function ``x -> (features, output, logits or None)`` for ``model``, with ``target``'s output as features."""
    import keras

    if len(model.outputs) != 1:
        raise ValueError(f"Grad-CAM needs a model with one output. Received: {len(model.outputs)} outputs")
    top = next((layer for layer in model.layers if _contains(layer, target)), None)
    if top is None:
        raise ValueError(f"Layer {target.name!r} is not part of model {model.name!r}.")
    head = _softmax_dense(model)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # called with one tensor
    if top is target:
        outputs = [target.output, model.outputs[0]] + ([head.input] if head is not None else [])
        traced = keras.Model(inputs, outputs)

        def run(x):
            values = traced(x, training=False)
            if head is not None:
                return values[0], values[1], _logits(head, values[2])
            return values[0], values[1], (values[1] if _outputs_logits(model) else None)

        return run
    # the features lie inside a nested model: trace the wrapper around it
    nodes = getattr(top, "_inbound_nodes", [])  # Keras 3: one node per call of the nested model
    if len(nodes) != 1 or len(nodes[0].input_tensors) != 1 or len(nodes[0].output_tensors) != 1:
        raise ValueError(
            f"Grad-CAM cannot trace nested model {top.name!r} inside {model.name!r}: it is called "
            f"{len(nodes)} times or with several inputs/outputs. Pass the nested model itself."
        )
    nested_in, nested_out = nodes[0].input_tensors[0], nodes[0].output_tensors[0]
    before = None if nested_in is model.inputs[0] else keras.Model(inputs, nested_in)
    after = None
    if nested_out is not model.outputs[0]:
        after = keras.Model(nested_out, [model.outputs[0]] + ([head.input] if head is not None else []))
    inner = _tracer(top, target)

    def run(x):
        features, output, logits = inner(x if before is None else before(x, training=False))
        if after is None:
            return features, output, logits
        values = after(output, training=False)
        if head is not None:  # the classifier follows the nested model
            return features, values[0], _logits(head, values[1])
        if _outputs_logits(model):
            return features, values[0], values[0]
        # what follows keeps the classes (a temperature, say): the nested classifier's logits stand
        return features, values[0], logits

    return run


def _scores(output, logits):
    import keras

    if logits is not None:
        return logits
    logp = keras.ops.log(keras.ops.maximum(keras.ops.cast(output, "float32"), 1e-30))
    return logp - keras.ops.mean(logp, axis=-1, keepdims=True)


def grad_cam(model, images, class_index=None, layer=None, batch_size: int = 32) -> np.ndarray:
    """Grad-CAM heat maps of ``model`` on ``images``.

    Args:
        model: A Keras model taking the images as given (raw pixels for a kresnet
            model, which normalises itself) and outputting class probabilities or logits.
        images: ``[N, H, W, 3]`` (uint8 or float) at the model's input size, or one
            ``[H, W, 3]`` image.
        class_index: None for each image's predicted class, an int for one class for
            all, or a sequence of N ints.
        layer: The layer (or its name) to read; default `find_gradcam_layer`.
        batch_size: Images per gradient pass.

    Returns:
        float32 ``[N, H, W]`` maps in [0, 1] (``[H, W]`` for one image); an all-zero
        map when nothing in the image raises the class's score.

    Raises:
        ValueError: images of another size than the model takes, a class index out
            of range, or a model Grad-CAM cannot trace.

    Example:
        >>> maps = grad_cam(run.model, uint8_images)   # run = keras_resnet.runs.load_run(...)
    """
    import tensorflow as tf

    pixels = np.asarray(images)
    single = pixels.ndim == 3
    if single:
        pixels = pixels[None]
    if pixels.ndim != 4 or pixels.shape[-1] != 3:
        raise ValueError(f"images must be [N, H, W, 3] (or one [H, W, 3]). Received: shape={np.asarray(images).shape}")
    expected = tuple(model.inputs[0].shape[1:3])
    if all(expected) and tuple(pixels.shape[1:3]) != tuple(int(v) for v in expected):
        raise ValueError(
            f"The model takes {expected[0]}x{expected[1]} images. Received: {pixels.shape[1]}x{pixels.shape[2]} "
            "(resize them first, e.g. with keras_resnet.data.preprocess.resize_for_eval)."
        )
    count = len(pixels)
    num_classes = int(model.outputs[0].shape[-1])
    if class_index is None:
        classes = None
    else:
        classes = np.broadcast_to(np.asarray(class_index, dtype=np.int64), (count,)) if np.ndim(class_index) == 0 \
            else np.asarray(class_index, dtype=np.int64)
        if classes.shape != (count,):
            raise ValueError(f"class_index needs one class per image ({count}). Received: {len(classes)} classes")
        if count and (classes.min() < 0 or classes.max() >= num_classes):
            raise ValueError(f"class_index must be in [0, {num_classes}). Received: class_index={class_index!r}")
    if isinstance(layer, str):
        layer = _layer_named(model, layer)
    target = layer if layer is not None else find_gradcam_layer(model)
    run = _tracer(model, target)
    maps = []
    for start in range(0, count, max(1, int(batch_size))):
        x = tf.convert_to_tensor(pixels[start : start + batch_size].astype(np.float32))
        with tf.GradientTape() as tape:
            features, output, logits = run(x)
            scores = _scores(output, logits)
            chosen = tf.argmax(scores, axis=-1) if classes is None else tf.constant(classes[start : start + batch_size])
            score = tf.gather(scores, chosen, axis=1, batch_dims=1)
        grads = tape.gradient(score, features)
        if grads is None:
            raise ValueError(f"The class score does not depend on layer {target.name!r}; cannot compute Grad-CAM.")
        weights = tf.reduce_mean(tf.cast(grads, tf.float32), axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * tf.cast(features, tf.float32), axis=-1))
        cam = tf.image.resize(cam[..., None], pixels.shape[1:3], method="bilinear")[..., 0]
        peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
        maps.append(np.asarray(tf.math.divide_no_nan(cam, peak), dtype=np.float32))
    out = np.concatenate(maps) if maps else np.zeros((0, *pixels.shape[1:3]), np.float32)
    return out[0] if single else out


def _layer_named(model, name: str):
    for candidate in leaf_layers(model):
        if candidate.name == name:
            return candidate
    raise ValueError(f"Model {model.name!r} has no layer named {name!r} (nested models searched too).")
