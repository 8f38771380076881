"""The training config's schema: one dataclass per section, every field with a default.

Closed sets of values are ``Literal`` type hints (named below, e.g. `StrategyName`):
the YAML loader checks against them and the command line offers them as its choices
(`keras_resnet.config.choices.choices`), so each list is written once. Ranges and
cross-field rules are checked by `keras_resnet.config.loader.validate_config`.

Example:
    >>> config = TrainConfig()
    >>> config.training.strategy, choices(StrategyName)
    ('auto', ('auto', 'default', 'mirrored', 'multi_worker', 'tpu'))
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from keras_resnet.config.choices import check_literals, choices
from keras_resnet.config.data import DataConfig

Pooling = Literal["avg", "max"]
#: ``model.stem_init``: the stem convolution's initial filters (`keras_resnet.models.whitening`).
StemInit = Literal["random", "whitening", "whitening_frozen"]
OptimizerName = Literal["sgd", "adamw"]
ScheduleName = Literal["step", "cosine", "one_cycle", "constant"]
Precision = Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"]
#: Test-time augmentation of an evaluation: ``none``, or ``flip`` (average with the mirrored image).
TTA = Literal["none", "flip"]
StrategyName = Literal["auto", "default", "mirrored", "multi_worker", "tpu"]
Monitor = Literal["val_accuracy", "val_loss"]
Progress = Literal["bar", "epoch", "none"]
#: A split a trained model is evaluated on (``kresnet evaluate --split``).
EvalSplit = Literal["test", "val"]
#: ``training.evaluate_split``: an `EvalSplit`, or ``"none"`` to skip the final evaluation.
EvaluateSplit = Literal[EvalSplit, "none"]
#: ``finetune.freeze`` / ``finetune.unfreeze`` (see `keras_resnet.train.finetune.freeze`).
FreezePolicy = Literal["none", "head_only", "until_stage1", "until_stage2", "until_stage3", "until_stage4"]
FREEZE_POLICIES: tuple[str, ...] = choices(FreezePolicy)


@dataclasses.dataclass
class ModelConfig:
    """The ``model:`` section: which ResNet to build (arguments of `build_resnet`).

    Attributes:
        name: A name from `kresnet models` (``resnet20``, ``resnet50`` ...).
        weights: None (random init), ``"imagenet"``, or a ``.weights.h5``/``.keras``
            file or run directory to start from.
        width_multiplier: Scale every stage's width (1.0 = the paper).
        depth: Depth of ``resnet_cifar``/``resnet_cifar_v2`` (6n+2).
        dropout: Dropout rate in the classifier head.
        pooling: Global pooling of the head.
        hidden_units: Optional hidden Dense layers in the head.
        allow_partial_weights: Load the backbone layers of ``weights`` that fit even
            when others are missing from the file or differ in shape (each is
            reported); False refuses such a file, naming the layers.
        stem_init: ``"random"`` (He init, as every other layer), ``"whitening"``: the stem
            convolution starts from the PCA whitening of training-image patches, or
            ``"whitening_frozen"``: the same, kept fixed during training. Only for a
            model trained from scratch (``weights`` null).
        zero_init_residual: Start the last layer of every residual branch at zero (the
            BatchNorm scale in v1 blocks, the last convolution in pre-activation v2), so
            each block starts as its shortcut (Goyal et al. 2017;
            `keras_resnet.models.zero_init`). Only for a model trained from scratch.
    """

    name: str = "resnet20"
    weights: str | None = None
    width_multiplier: float = 1.0
    depth: int | None = None
    dropout: float = 0.0
    pooling: Pooling = "avg"
    hidden_units: tuple[int, ...] = ()
    allow_partial_weights: bool = False
    stem_init: StemInit = "random"
    zero_init_residual: bool = False


@dataclasses.dataclass
class OptimizerConfig:
    """The ``optimizer:`` section.

    Attributes:
        name: ``"sgd"`` (momentum SGD) or ``"adamw"``.
        learning_rate: Peak learning rate for ``reference_batch_size`` images per step;
            the run uses ``learning_rate * data.batch_size / reference_batch_size``
            (the linear scaling rule).
        reference_batch_size: Batch size ``learning_rate`` is given for; None: use
            ``learning_rate`` as is.
        momentum: SGD momentum.
        nesterov: Nesterov momentum (SGD).
        weight_decay: *Decoupled* weight decay, as Keras optimizers apply it:
            ``w -= lr * weight_decay * w`` each step. For momentum SGD this equals a
            classic L2 coefficient of ``weight_decay * (1 - momentum)``: He et al.'s
            L2 1e-4 at momentum 0.9 is ``weight_decay: 1.0e-3``.
        decay_all_variables: Also decay BatchNorm parameters and biases (by default
            only convolution and dense kernels are decayed).
        beta_1: AdamW beta_1.
        beta_2: AdamW beta_2.
        epsilon: AdamW epsilon.
        clipnorm: Clip each gradient to this norm (None: no clipping).
        ema_momentum: Keep an exponential moving average of the weights with this
            momentum (Keras optimizers' ``use_ema``), e.g. 0.999; the saved
            ``model.keras`` and its evaluation use the averaged weights. None: off.
            Per-epoch validation and ``best.keras`` see the live weights.
    """

    name: OptimizerName = "sgd"
    learning_rate: float = 0.2
    reference_batch_size: int | None = 256
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5.0e-3
    decay_all_variables: bool = False
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1.0e-7
    clipnorm: float | None = None
    ema_momentum: float | None = None


@dataclasses.dataclass
class ScheduleConfig:
    """The ``schedule:`` section (see `keras_resnet.train.schedules.WarmupSchedule`).

    Attributes:
        name: ``"step"``, ``"cosine"``, ``"one_cycle"`` or ``"constant"``.
        warmup_epochs: Linear warmup length in epochs (fractions allowed); capped at
            half of a phase, so short runs (``--epochs 1``) still decay.
        warmup_start_factor: The warmup starts at this fraction of the peak rate.
        boundaries: ``step``: epochs at which the rate is multiplied by ``decay_rate``.
        decay_rate: ``step``: multiplier at each boundary.
        final_factor: ``cosine``/``one_cycle``: final rate as a fraction of the peak.
    """

    name: ScheduleName = "one_cycle"
    warmup_epochs: float = 5.0
    warmup_start_factor: float = 0.1
    boundaries: tuple[float, ...] = ()
    decay_rate: float = 0.1
    final_factor: float = 0.001


@dataclasses.dataclass
class TrainingConfig:
    """The ``training:`` section.

    Attributes:
        epochs: Total epochs (all fine-tuning phases together).
        seed: Seeds Python, NumPy, TensorFlow and the data pipeline.
        deterministic: Deterministic ops (``tf.config.experimental.enable_op_determinism``):
            slower, bit-for-bit repeatable on the same machine.
        precision: ``auto``, ``float32``, ``mixed_float16`` or ``mixed_bfloat16``; the
            classifier head always computes in float32. ``auto`` picks what is fastest
            where the run starts (see `keras_resnet.train.precision.resolve_precision`):
            bfloat16 on TPUs, GPUs of compute capability 8.0+ and CPUs with AMX-BF16 or
            AVX512-BF16 (oneDNN on), float16 on older GPUs, float32 otherwise.
        strategy: ``auto`` (MirroredStrategy when more than one GPU is visible),
            ``default``, ``mirrored``, ``multi_worker`` (reads ``TF_CONFIG``) or ``tpu``.
        label_smoothing: Label smoothing of the categorical cross-entropy.
        early_stopping_patience: Stop after this many epochs without improving
            ``monitor`` (None: never).
        monitor: Metric deciding ``best.keras`` and early stopping.
        steps_per_epoch: Cap on training steps per epoch (None: the whole split).
        steps_per_execution: Steps run inside one ``tf.function`` call.
        progress: ``bar`` (Keras progress bar), ``epoch`` (one line per epoch) or ``none``.
        tensorboard: Write TensorBoard logs to ``RUN/logs``.
        evaluate_split: Split evaluated at the end (``metrics.json``); ``none`` to skip.
        tta: Test-time augmentation also reported by the final evaluation, beside
            (never instead of) the plain figures: ``none`` or ``flip``.
        fused_batchnorm: On the TensorFlow backend, run the model's BatchNormalization
            layers through TensorFlow's fused kernel while training and evaluating
            (`keras_resnet.compat.fuse_batch_norm`: the same arithmetic, 1.3-2x
            faster ResNet-20 steps on CPU; saved models stay plain Keras). ``false``
            keeps Keras' own layer.
    """

    epochs: int = 30
    seed: int = 0
    deterministic: bool = False
    precision: Precision = "float32"
    strategy: StrategyName = "auto"
    label_smoothing: float = 0.1
    early_stopping_patience: int | None = None
    monitor: Monitor = "val_accuracy"
    steps_per_epoch: int | None = None
    steps_per_execution: int = 1
    progress: Progress = "bar"
    tensorboard: bool = True
    evaluate_split: EvaluateSplit = "test"
    tta: TTA = "none"
    fused_batchnorm: bool = True


@dataclasses.dataclass
class FinetuneConfig:
    """How to fine-tune: the ``finetune:`` section of a training config.

    Attributes:
        freeze: Freeze policy of a single-phase run (``head_epochs == 0``):
            ``"none"``, ``"head_only"``, ``"until_stage1"`` .. ``"until_stage4"``.
        head_epochs: Epochs of phase 1 (only the new head trains, backbone frozen).
            0 = a single phase. Must be below ``training.epochs``; phase 2 gets
            the rest.
        head_learning_rate: Peak learning rate of phase 1, in the units of
            ``optimizer.learning_rate`` (the trainer's batch-size scaling applies to
            both); None = ``optimizer.learning_rate``. Usually higher than
            ``optimizer.learning_rate``, which phase 2 (and a single phase) uses.
        unfreeze: Freeze policy of phase 2 (what stays frozen): ``"none"`` unfreezes
            the whole backbone, ``"until_stage2"`` keeps stem + stages 1-2 frozen.
        backbone_lr_multiplier: Learning-rate multiplier of the backbone's trainable
            layers in phase 2 (the head uses 1.0). With frozen BatchNorm the
            backbone has no batch normalisation to absorb large updates: keep its
            rate about 1/10-1/100 of a from-scratch rate (in benchmarks/transfer.py
            a 6x larger backbone rate made phase 2 diverge).
        stage_lr_multipliers: Optional multipliers per residual stage, stage 1 first
            (the stem uses stage 1's); overrides ``backbone_lr_multiplier`` for the
            stages it lists. Empty = use ``backbone_lr_multiplier`` everywhere.
        train_batchnorm: Let BatchNorm layers of unfrozen stages train (update
            their statistics). None = automatic: False when starting from
            pretrained weights (``model.weights``), True when training from scratch.
    """

    freeze: FreezePolicy = "none"
    head_epochs: int = 0
    head_learning_rate: float | None = None
    unfreeze: FreezePolicy = "none"
    backbone_lr_multiplier: float = 0.1
    stage_lr_multipliers: tuple[float, ...] = ()
    train_batchnorm: bool | None = None

    def __post_init__(self):
        validate_finetune_config(self)


def validate_finetune_config(config: FinetuneConfig) -> None:
    """Check a `FinetuneConfig`'s values (types are checked by the config loader).

    Raises:
        ValueError: naming the field (``finetune.<field>``), its value and what is expected.
    """
    check_literals(config, "finetune")
    if isinstance(config.head_epochs, bool) or not isinstance(config.head_epochs, int) or config.head_epochs < 0:
        raise ValueError(f"finetune.head_epochs must be an integer >= 0. Received: head_epochs={config.head_epochs!r}")
    if config.head_learning_rate is not None and not config.head_learning_rate > 0:
        raise ValueError(
            "finetune.head_learning_rate must be > 0 or null. "
            f"Received: head_learning_rate={config.head_learning_rate!r}"
        )
    if not config.backbone_lr_multiplier >= 0:
        raise ValueError(
            "finetune.backbone_lr_multiplier must be >= 0. "
            f"Received: backbone_lr_multiplier={config.backbone_lr_multiplier!r}"
        )
    multipliers = tuple(config.stage_lr_multipliers)
    if len(multipliers) > 4 or any(not m >= 0 for m in multipliers):
        raise ValueError(
            "finetune.stage_lr_multipliers must hold at most 4 numbers >= 0 (stage 1 first). "
            f"Received: stage_lr_multipliers={config.stage_lr_multipliers!r}"
        )


@dataclasses.dataclass
class TrainConfig:
    """A whole training run.

    Attributes:
        data: `keras_resnet.config.data.DataConfig` (dataset, batch size, augmentation).
        model: `ModelConfig`.
        optimizer: `OptimizerConfig`.
        schedule: `ScheduleConfig`.
        training: `TrainingConfig`.
        finetune: `FinetuneConfig`.
        run_dir: Where the run is written; None: ``saved_models/<model>-<dataset>-<time>``.
            Running again with the same ``run_dir`` resumes an interrupted run.
    """

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    finetune: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)
    run_dir: str | None = None
