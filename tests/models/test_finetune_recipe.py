"""The seed's recipe, configs/folder_finetune_resnet18.yaml: it loads, plans two phases and
freezes what it says on the real ResNet-18 (tests/train/test_config.py loads every recipe too)."""

import keras_resnet as kr
from keras_resnet.train.config import find_recipe, load_config
from keras_resnet.train.finetune import plan_phases


def recipe():
    return load_config(find_recipe("folder_finetune_resnet18"), overrides={"data.data_dir": "photos"})


def test_recipe_is_pretrained_resnet18_at_224_with_torch_normalisation():
    config = recipe()
    assert (config.model.name, config.model.weights) == ("resnet18", "imagenet")
    assert config.data.image_size == 224 and config.data.normalization == "torch"
    assert config.data.dataset is None and config.data.class_balance != "none"
    assert config.data.augment.crop == "resized" and config.data.augment.horizontal_flip
    assert config.model.dropout > 0
    text = find_recipe("folder_finetune_resnet18").read_text()
    assert "kresnet train --config folder_finetune_resnet18 --data-dir" in text
    assert "Not measured here" in text and "# hidden_units:" in text


def test_recipe_trains_the_head_first_then_unfreezes_all_but_the_early_layers():
    config = recipe()
    head, finetune = plan_phases(config)
    assert (head.name, head.freeze, head.epochs) == ("head", "head_only", config.finetune.head_epochs)
    assert head.learning_rate_scale == config.finetune.head_learning_rate / config.optimizer.learning_rate > 1
    assert (finetune.name, finetune.freeze) == ("finetune", "until_stage1")
    assert not head.train_batchnorm and not finetune.train_batchnorm  # pretrained: BN statistics stay frozen

    model = kr.build_resnet("resnet18", num_classes=5, dropout=config.model.dropout)
    kr.freeze(model, finetune.freeze, train_batchnorm=finetune.train_batchnorm)
    trainable = {layer.name: layer.trainable for layer in model.layers if layer.weights}
    assert not trainable["conv1_conv"] and not trainable["conv2_block2_2_conv"]  # stem + stage 1 frozen
    assert trainable["conv3_block1_1_conv"] and trainable["conv5_block2_2_conv"] and trainable["predictions"]
    assert not trainable["conv5_block2_2_bn"]  # frozen BatchNorm also in unfrozen stages
