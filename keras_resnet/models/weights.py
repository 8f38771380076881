"""Pretrained weights: one import point for the four modules that do the work.

* `keras_resnet.models.weight_cache`: where ImageNet files live in Keras' cache, where
  they are downloaded from and their hashes (keras.applications' ResNet-50/101/152
  files; torchvision's ResNet-18/34 checkpoints, converted once and cached).
* `keras_resnet.models.weight_files`: readers (``.keras``, run directories, Keras 3
  ``.weights.h5``, legacy ``.h5``; torch ``.pth`` and ``.safetensors`` state dicts).
* `keras_resnet.models.weight_loading`: by-name assignment with shape checks,
  `LoadReport`, `load_pretrained` (what ``build_resnet(weights=...)`` calls),
  `save_weights`.
* `keras_resnet.models.torch_convert`: torchvision/timm ResNet-18/34 state dicts ->
  kresnet layers (`convert_torch_state_dict`) and weight files (`convert_weights`).

The torch-free ``.pth`` reader is `keras_resnet.models.torch_checkpoint`. Existing
``from keras_resnet.models.weights import X`` imports keep working; patch a function
in the module that defines it (e.g. ``weight_cache._download``), not here.
"""

from keras_resnet.models.naming import is_head_layer, leaf_layers
from keras_resnet.models.specs import CIFAR_STEM, ResNetSpec, get_spec
from keras_resnet.models.torch_checkpoint import TorchCheckpointError, UnsafeCheckpointError, read_pth
from keras_resnet.models.torch_convert import convert_torch_state_dict, convert_weights
from keras_resnet.models.weight_cache import (
    CONVERTIBLE_MODELS,
    IMAGENET_MODELS,
    KERAS_APPLICATIONS_NAMES,
    KERAS_WEIGHTS_HASHES,
    KERAS_WEIGHTS_URL,
    TORCHVISION_FILES,
    TORCHVISION_URL,
    TORCHVISION_URL_ENV,
    PretrainedWeightsUnavailable,
    WeightsHashMismatch,
    converted_weights_path,
    file_digest,
    imagenet_weights_file,
    keras_applications_file,
    keras_applications_weights,
    keras_cache_dir,
    sha256_prefix,
    torchvision_base_url,
    torchvision_checkpoint,
    torchvision_file,
)
from keras_resnet.models.weight_files import read_torch_checkpoint, read_weights
from keras_resnet.models.weight_loading import LoadReport, assign_by_name, load_pretrained, save_weights

__all__ = [
    "CIFAR_STEM",
    "CONVERTIBLE_MODELS",
    "IMAGENET_MODELS",
    "KERAS_APPLICATIONS_NAMES",
    "KERAS_WEIGHTS_HASHES",
    "KERAS_WEIGHTS_URL",
    "TORCHVISION_FILES",
    "TORCHVISION_URL",
    "TORCHVISION_URL_ENV",
    "LoadReport",
    "PretrainedWeightsUnavailable",
    "ResNetSpec",
    "TorchCheckpointError",
    "UnsafeCheckpointError",
    "WeightsHashMismatch",
    "assign_by_name",
    "convert_torch_state_dict",
    "convert_weights",
    "converted_weights_path",
    "file_digest",
    "get_spec",
    "imagenet_weights_file",
    "is_head_layer",
    "keras_applications_file",
    "keras_applications_weights",
    "keras_cache_dir",
    "leaf_layers",
    "load_pretrained",
    "read_pth",
    "read_torch_checkpoint",
    "read_weights",
    "save_weights",
    "sha256_prefix",
    "torchvision_base_url",
    "torchvision_checkpoint",
    "torchvision_file",
]
