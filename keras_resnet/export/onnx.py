"""ONNX export: raw uint8 RGB pixels in, ``probabilities`` out, opset `OPSET`.

The graph takes ``images: uint8 [N, h, w, 3]`` (N free, h and w the model's image
size; other sizes are resized on the host like TFLite's) and returns
``probabilities: float32 [N, C]``. It is the Keras model (which normalises its raw
0..255 input in its first layer, ``preprocessing``) behind one ``Cast`` to float32;
nothing else is added. Class names and the preprocessing spec are stored in the
model's ``metadata_props`` (``kresnet.labels``, ``kresnet.preprocessing``) beside the
``labels.txt`` written next to the file.

Route: tf2onnx (TensorFlow backend), on a ``tf.function`` around the model, frozen with
``tf2onnx.tf_loader.from_function`` and converted with ``tf2onnx.convert.from_graph_def``.
Keras' own ``model.export(path, format="onnx")`` calls ``tf2onnx.convert.from_function``
on the model's concrete function, which lists every non-variable tensor the function
captures as a graph input (tf2onnx 1.17.0, ``convert.py``: ``input_names = [t.name for t
in concrete_func.inputs if t.dtype != resource]``). The ``Normalization`` layer keeps its
mean and variance as constant tensors, so that route gives a graph with three inputs
(``images`` plus the layer's mean and variance) that onnxruntime refuses to run without
them. Here the input names come from the function's signature only, and freezing turns
the captured constants into initializers. Checked with tf2onnx 1.17.0, onnx 1.23.2,
onnxruntime 1.31.1, TensorFlow 2.21, Keras 3.15.

The dependencies are optional: ``pip install "kresnet[onnx]"``.

Example:
    >>> write_onnx(model, "export/onnx/model.onnx", (32, 32), labels=labels, spec=spec)
    >>> OnnxRunner("export/onnx/model.onnx").predict(uint8_images)
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

# Opset 17 (ONNX 1.12): within tf2onnx 1.17's range (it maps opsets up to 18 to an IR
# version) and run by onnxruntime >= 1.13. A ResNet needs no op newer than opset 13.
OPSET = 17
INSTALL_HINT = 'pip install "kresnet[onnx]"'
EXPORT_MODULES = ("onnx", "tf2onnx", "onnxruntime")
RUNTIME_MODULES = ("onnxruntime",)
METADATA_LABELS = "kresnet.labels"
METADATA_PREPROCESSING = "kresnet.preprocessing"
METADATA_INPUT = "kresnet.input"
BATCH_DIM = "batch"


class OnnxDependencyError(ImportError, ValueError):
    """An ONNX package is missing.

    An ``ImportError``, and also a ``ValueError`` so the CLI reports it like any other
    bad request (one line, exit status 1) instead of a traceback.
    """


def require(modules=EXPORT_MODULES, purpose: str = "ONNX export") -> dict:
    """Import the ONNX packages ``purpose`` needs, or say how to install them.

    Args:
        modules: Module names (default: what an export needs: onnx, tf2onnx and
            onnxruntime for the parity gate).
        purpose: Named in the error.

    Returns:
        {name: module}.

    Raises:
        OnnxDependencyError: naming the missing packages and ``pip install "kresnet[onnx]"``.
    """
    found, missing = {}, []
    for name in modules:
        try:
            found[name] = importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise OnnxDependencyError(
            f"{purpose} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed. "
            f"Install the ONNX extra: {INSTALL_HINT}"
        )
    return found


def convert_to_onnx(
    model,
    image_size: tuple[int, int],
    labels: list[str] | None = None,
    spec: dict | None = None,
    opset: int = OPSET,
):
    """The ONNX ``ModelProto`` for a Keras model taking raw 0..255 RGB pixels.

    Args:
        model: Keras model taking float 0..255 RGB images at ``image_size`` (it
            normalises them itself) and returning probabilities [N, C].
        image_size: (height, width) of the graph's input.
        labels: Class names, stored in the metadata (checked against the outputs).
        spec: Preprocessing spec, stored in the metadata (a record only: the
            normalisation is the model's own first layer).
        opset: ONNX opset of the default domain.

    Returns:
        ``onnx.ModelProto`` with input ``images`` (uint8 [batch, h, w, 3]) and
        output ``probabilities`` (float32 [batch, C]).

    Raises:
        OnnxDependencyError: if onnx or tf2onnx is missing.
        ValueError: on a bad image size or labels that do not match the outputs.
    """
    from keras_resnet.export.runners import INPUT_NAME, PROBABILITIES

    if not (len(image_size) == 2 and all(isinstance(v, int) and v > 0 for v in image_size)):
        raise ValueError(f"image_size must be (height, width), two positive ints. Received: image_size={image_size!r}")
    outputs = model.outputs[0].shape[-1] if getattr(model, "outputs", None) else None
    if labels is not None and outputs is not None and outputs != len(labels):
        raise ValueError(f"The model outputs {outputs} classes but {len(labels)} labels were given.")
    modules = require(("onnx", "tf2onnx"))
    onnx, tf2onnx = modules["onnx"], modules["tf2onnx"]
    import tensorflow as tf
    from tf2onnx import tf_loader

    height, width = image_size

    @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.uint8, name=INPUT_NAME)])
    def serve(images):
        return {PROBABILITIES: model(tf.cast(images, tf.float32), training=False)}

    concrete = serve.get_concrete_function()
    arguments = len(tf.nest.flatten(concrete.structured_input_signature))
    input_names = [t.name for t in concrete.inputs[:arguments]]  # not the captured constants
    output_names = [concrete.structured_outputs[PROBABILITIES].name]
    # tf2onnx calls TF1-era graph utilities that log deprecation warnings on every export; not ours to act on.
    tf_logger, level = tf.get_logger(), tf.get_logger().level
    tf_logger.setLevel("ERROR")
    try:
        graph_def = tf_loader.from_function(concrete, input_names, output_names)
        proto, _ = tf2onnx.convert.from_graph_def(
            graph_def,
            name="kresnet",
            input_names=input_names,
            output_names=output_names,
            opset=opset,
            tensors_to_rename={input_names[0]: INPUT_NAME, output_names[0]: PROBABILITIES},
        )
    finally:
        tf_logger.setLevel(level)
    for value in list(proto.graph.input) + list(proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_DIM
    metadata = {METADATA_INPUT: f"uint8 RGB [{BATCH_DIM}, {height}, {width}, 3], 0..255; normalised inside"}
    if labels is not None:
        metadata[METADATA_LABELS] = json.dumps([str(name) for name in labels])
    if spec is not None:
        metadata[METADATA_PREPROCESSING] = json.dumps(spec)
    onnx.helper.set_model_props(proto, metadata)
    onnx.checker.check_model(proto)
    return proto


def write_onnx(
    model,
    path: str | os.PathLike,
    image_size: tuple[int, int],
    labels: list[str] | None = None,
    spec: dict | None = None,
    opset: int = OPSET,
) -> Path:
    """Write `convert_to_onnx`'s model to ``path``.

    Returns:
        ``path``.

    Example:
        >>> write_onnx(model, "model.onnx", (32, 32), labels=["cat", "dog"])
    """
    proto = convert_to_onnx(model, image_size, labels, spec, opset)
    path = Path(path)
    path.write_bytes(proto.SerializeToString())
    return path


def opset_of(path: str | os.PathLike) -> int:
    """The default-domain opset an ``.onnx`` file was written with."""
    onnx = require(("onnx",), "Reading an ONNX model")["onnx"]
    proto = onnx.load(str(path), load_external_data=False)
    return next(int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def metadata_of(path: str | os.PathLike) -> dict:
    """The ``metadata_props`` of an ``.onnx`` file as a dict of strings."""
    onnx = require(("onnx",), "Reading an ONNX model")["onnx"]
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


__all__ = [
    "INSTALL_HINT",
    "OPSET",
    "OnnxDependencyError",
    "convert_to_onnx",
    "metadata_of",
    "opset_of",
    "require",
    "write_onnx",
]
