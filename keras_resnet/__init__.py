"""kresnet: ResNet image recognition with TensorFlow/Keras.

The public API is imported lazily, so ``import keras_resnet`` (and ``kresnet --help``)
does not start TensorFlow until a model function is used.

Example:
    >>> import keras_resnet as kr
    >>> model = kr.build_resnet("resnet18", num_classes=10)
"""

import importlib
import os
from importlib.metadata import PackageNotFoundError, version

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) buries our output;
# users can still set TF_CPP_MIN_LOG_LEVEL themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

try:
    __version__ = version("kresnet")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

_PUBLIC = {
    "build_resnet": "keras_resnet.models",
    "list_models": "keras_resnet.models",
    "replace_head": "keras_resnet.models",
    "freeze": "keras_resnet.train.finetune",
    "grad_cam": "keras_resnet.models.gradcam",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'keras_resnet' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
