"""ResNet builders, the model table and the classifier head."""

from keras_resnet.models.heads import replace_head
from keras_resnet.models.resnet import build_resnet
from keras_resnet.models.specs import SPECS, ResNetSpec, get_spec, list_models

__all__ = ["SPECS", "ResNetSpec", "build_resnet", "get_spec", "list_models", "replace_head"]
