"""kresnet: ResNet image recognition with TensorFlow/Keras.

Example:
    >>> import keras_resnet as kr
    >>> model = kr.build_resnet("resnet18", num_classes=10)
"""

import os
from importlib.metadata import PackageNotFoundError, version

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) buries our output;
# users can still set TF_CPP_MIN_LOG_LEVEL themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_resnet.models import build_resnet, list_models, replace_head  # noqa: E402
from keras_resnet.train.finetune import freeze  # noqa: E402

try:
    __version__ = version("kresnet")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "build_resnet", "freeze", "list_models", "replace_head"]
