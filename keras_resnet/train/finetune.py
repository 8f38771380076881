"""Fine-tuning: freezing by stage, BatchNorm done right, and the two-phase plan.

The recipe (Keras' transfer-learning guide, and the seed article's
``model.fc = nn.Linear(...)``): load a pretrained ResNet, give it a new head, train
the head with the backbone frozen at a higher learning rate, then unfreeze some or
all stages and train on at a lower one.

* `freeze(model, policy)` sets ``layer.trainable`` by layer-name prefix:
  ``"none"``, ``"head_only"`` (everything but the head is frozen),
  ``"until_stage1"`` .. ``"until_stage4"`` (stem and stages 1..k frozen).
* **BatchNorm.** A Keras 3 ``BatchNormalization`` with ``trainable=False`` runs in
  inference mode (moving statistics, never updated). When a pretrained backbone is
  unfrozen again, its BatchNorm layers *stay* frozen by default
  (``train_batchnorm=False``): re-estimating the statistics from a small, new
  dataset with small batches is the most common way fine-tuning goes wrong.
* `plan_phases(config)` turns ``config.finetune`` and ``config.training.epochs`` into
  a list of `Phase` objects; the trainer runs them in order in one run directory,
  each with ``initial_epoch`` offsets, so a resumed run continues in the phase it
  was interrupted in (`phase_at_epoch`).
* **Per-stage learning rates.** Keras 3 optimizers have one learning rate, so
  `apply_lr_multipliers` wraps the optimizer's ``update_step`` on that one instance
  to multiply the learning rate per variable. This is a true learning-rate scale
  for every optimizer (also Adam, where scaling gradients would cancel out); the
  optimizer keeps its own class, so saved models reload without custom objects.

Trainer usage, per phase::

    for phase in plan_phases(config):
        freeze(model, phase.freeze, train_batchnorm=phase.train_batchnorm)
        print(parameter_table(model))
        optimizer = make_optimizer(schedule(base_lr * phase.learning_rate_scale, phase.epochs))
        apply_lr_multipliers(optimizer, model, phase.lr_multipliers)
        model.compile(optimizer, ...)
        model.fit(..., initial_epoch=phase.initial_epoch, epochs=phase.end_epoch)

(`remaining_phases` / `phase_at_epoch` tell where a resumed run continues.)
"""

from __future__ import annotations

import dataclasses

from keras_resnet.compat import scale_learning_rate_per_variable
from keras_resnet.config import (
    FREEZE_POLICIES,
    FinetuneConfig,
    FreezePolicy,
    TrainConfig,
    validate_finetune_config,
)
from keras_resnet.models.naming import (
    HEAD,
    POST,
    STEM,
    STEM_PREFIXES,
    count_stages,
    layer_group,
    leaf_layers,
    stage_of,
    stage_prefix,
)

__all__ = [
    "FREEZE_POLICIES",
    "FinetuneConfig",
    "FreezePolicy",
    "Phase",
    "apply_lr_multipliers",
    "freeze",
    "layer_group",
    "lr_multiplier_table",
    "parameter_counts",
    "parameter_table",
    "phase_at_epoch",
    "plan_phases",
    "remaining_phases",
    "stage_multipliers",
    "validate_finetune_config",
]


@dataclasses.dataclass(frozen=True)
class Phase:
    """One training phase of a run.

    Attributes:
        name: ``"train"`` (single phase), ``"head"`` or ``"finetune"``.
        epochs: Number of epochs of this phase.
        freeze: The freeze policy to apply before compiling this phase.
        learning_rate_scale: Multiplies the configured learning rate (schedule) in
            this phase; phase 1 uses ``head_learning_rate / configured rate``.
        initial_epoch: Epochs run before this phase (pass to ``fit(initial_epoch=)``).
        lr_multipliers: ``(layer-name prefix, multiplier)`` pairs for
            `apply_lr_multipliers`; empty = one learning rate for all.
        train_batchnorm: Passed to `freeze`.
    """

    name: str
    epochs: int
    freeze: FreezePolicy
    learning_rate_scale: float = 1.0
    initial_epoch: int = 0
    lr_multipliers: tuple[tuple[str, float], ...] = ()
    train_batchnorm: bool = True

    @property
    def end_epoch(self) -> int:
        """Epoch count at the end of this phase (pass to ``fit(epochs=)``)."""
        return self.initial_epoch + self.epochs


def stage_multipliers(finetune: FinetuneConfig, num_stages: int = 4) -> tuple[tuple[str, float], ...]:
    """The phase-2 ``(prefix, multiplier)`` pairs of a fine-tuning config.

    Args:
        finetune: The `FinetuneConfig`.
        num_stages: Residual stages of the model (4, or 3 for CIFAR ResNets).

    Returns:
        Pairs for the stem (``conv1_``, ``pool1_``) and each stage (``conv2_`` ..;
        ``post_*`` layers of v2 models follow the model's last stage); empty when
        every multiplier is 1.0.
    """
    per_stage = [finetune.backbone_lr_multiplier] * num_stages
    for i, value in enumerate(finetune.stage_lr_multipliers[:num_stages]):
        per_stage[i] = float(value)
    pairs = [(prefix, per_stage[0]) for prefix in STEM_PREFIXES]
    pairs += [(f"{stage_prefix(i + 1)}_", per_stage[i]) for i in range(num_stages)]
    if all(m == 1.0 for _, m in pairs):
        return ()
    return tuple(pairs)


def plan_phases(config: TrainConfig) -> list[Phase]:
    """The training phases of a run.

    Args:
        config: The run's `TrainConfig` (reads ``finetune``, ``training.epochs``,
            ``optimizer.learning_rate`` and ``model.weights``).

    Returns:
        ``[Phase("train", epochs, finetune.freeze)]`` when ``head_epochs == 0``; else
        ``[Phase("head", head_epochs, "head_only", ...), Phase("finetune",
        epochs - head_epochs, finetune.unfreeze, ..., lr_multipliers=...)]``.

    Raises:
        ValueError: if ``head_epochs`` is not below ``training.epochs``, or a
            ``finetune`` value is out of range.

    Example:
        >>> [(p.name, p.epochs, p.freeze) for p in plan_phases(config)]
        [('head', 2, 'head_only'), ('finetune', 8, 'none')]
    """
    finetune = config.finetune
    validate_finetune_config(finetune)
    epochs = config.training.epochs
    pretrained = config.model.weights not in (None, "", "none")
    train_bn = (not pretrained) if finetune.train_batchnorm is None else bool(finetune.train_batchnorm)
    if finetune.head_epochs == 0:
        return [Phase("train", epochs, finetune.freeze, train_batchnorm=train_bn)]
    if finetune.head_epochs >= epochs:
        raise ValueError(
            "finetune.head_epochs must be less than training.epochs (phase 2 gets the rest). "
            f"Received: head_epochs={finetune.head_epochs!r}, epochs={epochs!r}"
        )
    head_scale = 1.0
    if finetune.head_learning_rate is not None:  # optimizer.learning_rate > 0: checked by validate_config
        head_scale = finetune.head_learning_rate / config.optimizer.learning_rate
    # A two-phase run always freezes the whole backbone in phase 1, so its BatchNorm
    # follows the same rule in phase 2: frozen unless train_batchnorm says otherwise.
    phase2_bn = bool(finetune.train_batchnorm) if finetune.train_batchnorm is not None else not pretrained
    return [
        Phase("head", finetune.head_epochs, "head_only", head_scale, 0, (), train_bn),
        Phase(
            "finetune",
            epochs - finetune.head_epochs,
            finetune.unfreeze,
            1.0,
            finetune.head_epochs,
            stage_multipliers(finetune),
            phase2_bn,
        ),
    ]


def phase_at_epoch(phases: list[Phase], epoch: int) -> Phase:
    """The phase that runs epoch number ``epoch`` (0-based; e.g. completed epochs on resume).

    Returns:
        That phase; the last one when ``epoch`` is at or past the end.
    """
    for phase in phases:
        if epoch < phase.end_epoch:
            return phase
    return phases[-1]


def remaining_phases(phases: list[Phase], completed_epochs: int) -> list[Phase]:
    """Phases still to run after ``completed_epochs`` epochs (resume).

    Returns:
        The phases whose ``end_epoch`` is beyond ``completed_epochs``, in order; fit
        the first with ``initial_epoch=max(completed_epochs, phase.initial_epoch)``.
    """
    return [phase for phase in phases if phase.end_epoch > completed_epochs]


# --------------------------------------------------------------------------- freezing


def _validate_policy(policy: str, num_stages: int, model_name: str) -> int | None:
    if policy not in FREEZE_POLICIES:
        raise ValueError(f"Unknown freeze policy. Expected one of {FREEZE_POLICIES}. Received: policy={policy!r}")
    if policy.startswith("until_stage"):
        k = int(policy[len("until_stage") :])
        if k > num_stages:
            raise ValueError(
                f"Model {model_name!r} has {num_stages} stages ({stage_prefix(1)}..{stage_prefix(num_stages)}); "
                f"expected until_stage1..until_stage{num_stages}. Received: policy={policy!r}"
            )
        return k
    return None


def _is_frozen(name: str, policy: str, k: int | None, num_stages: int) -> bool:
    if policy == "none":
        return False
    group = layer_group(name)
    if policy == "head_only":
        return group != HEAD
    if group == STEM:
        return True
    if group == POST:
        return k >= num_stages
    stage = stage_of(name)
    return stage is not None and stage <= k


def _is_batchnorm(layer) -> bool:
    import keras

    return isinstance(layer, keras.layers.BatchNormalization)


def freeze(model, policy: str = "none", train_batchnorm: bool = True):
    """Freeze a ResNet's layers by stage (layer-name prefix), in place.

    Policies: ``"none"`` (all trainable), ``"head_only"`` (only the head trains:
    ``avg_pool``/``max_pool``, ``head_*``, ``predictions``), ``"until_stage{k}"``
    (stem ``conv1_*``/``pool1_*`` and stages ``conv2_*`` .. ``conv{k+1}_*`` frozen; with
    the last stage also ``post_*`` of v2 models). Layers with other names train
    unless the policy is ``head_only``.

    Frozen layers have ``trainable=False``; a frozen ``BatchNormalization`` runs in
    inference mode and keeps its moving statistics. With ``train_batchnorm=False``
    *every* BatchNorm layer is frozen, also in unfrozen stages: the rule for a
    pretrained backbone (`plan_phases` chooses it; see `FinetuneConfig`).

    Call it before ``model.compile``; recompile after changing it.

    Args:
        model: A kresnet model or a ``keras.applications`` ResNet (nested models
            are descended into).
        policy: One of `FREEZE_POLICIES`.
        train_batchnorm: Whether BatchNorm layers of unfrozen stages train.

    Returns:
        ``model`` (the same object).

    Raises:
        ValueError: for an unknown policy or ``until_stage{k}`` beyond the model's
            stages (CIFAR ResNets have 3).

    Example:
        >>> freeze(model, "until_stage2")
        >>> model.get_layer("conv3_block1_1_conv").trainable
        False
    """
    num_stages = count_stages(model)
    k = _validate_policy(policy, num_stages, getattr(model, "name", "?"))
    _set_trainable_tree(model)
    for layer in leaf_layers(model):
        frozen = _is_frozen(layer.name, policy, k, num_stages)
        if _is_batchnorm(layer) and not train_batchnorm:
            frozen = True
        layer.trainable = not frozen
    return model


def _set_trainable_tree(model) -> None:
    """Make containers trainable so leaf flags decide (Keras propagates container flags)."""
    model.trainable = True
    for layer in model.layers:
        if getattr(layer, "layers", None):
            _set_trainable_tree(layer)


def _count(weights) -> int:
    import math

    return sum(math.prod(w.shape) for w in weights)


def parameter_counts(model) -> dict[str, dict[str, int]]:
    """Trainable, frozen and statistics parameters per part of the model.

    Returns:
        ``{group: {"trainable": n, "frozen": n, "statistics": n}}`` in model order,
        groups as in `layer_group`. ``frozen`` counts all weights of frozen layers;
        ``statistics`` the non-trainable weights of trainable layers (BatchNorm
        moving mean/variance). The three add up to ``model.count_params()``.
    """
    counts: dict[str, dict[str, int]] = {}
    for layer in leaf_layers(model):
        row = counts.setdefault(layer_group(layer.name), {"trainable": 0, "frozen": 0, "statistics": 0})
        if layer.trainable:
            row["trainable"] += _count(layer.trainable_weights)
            row["statistics"] += _count(layer.non_trainable_weights)
        else:
            row["frozen"] += _count(layer.weights)
    return counts


def parameter_table(model) -> str:
    """A printable table of trainable and frozen parameters per stage.

    Returns:
        Text such as::

            part      trainable     frozen  statistics
            stem              0        464          0
            stage1            0      4,672          0
            ...
            total        650       270,000         0
    """
    counts = parameter_counts(model)
    lines = [f"{'part':<8} {'trainable':>12} {'frozen':>12} {'statistics':>12}"]
    total = {"trainable": 0, "frozen": 0, "statistics": 0}
    for group, row in counts.items():
        if not any(row.values()):
            continue
        lines.append(f"{group:<8} {row['trainable']:>12,} {row['frozen']:>12,} {row['statistics']:>12,}")
        for key in total:
            total[key] += row[key]
    lines.append(f"{'total':<8} {total['trainable']:>12,} {total['frozen']:>12,} {total['statistics']:>12,}")
    return "\n".join(lines)


# ------------------------------------------------------------------ learning rates


def lr_multiplier_table(model, lr_multipliers) -> dict[str, float]:
    """Map each trainable variable's path to its learning-rate multiplier.

    Args:
        model: The model being trained.
        lr_multipliers: ``(layer-name prefix, multiplier)`` pairs; first match wins;
            layers matching none use 1.0.

    Returns:
        ``{variable.path: multiplier}`` for variables whose multiplier is not 1.0.
    """
    table: dict[str, float] = {}
    pairs = tuple(lr_multipliers)
    if not pairs:
        return table
    last_stage_prefix = f"{stage_prefix(count_stages(model))}_"
    for layer in leaf_layers(model):
        name = layer.name
        if layer_group(name) == POST:  # v2 models' final BN follows the last stage
            name = last_stage_prefix + name
        for prefix, mult in pairs:
            if name.startswith(prefix):
                if float(mult) != 1.0:
                    for variable in layer.trainable_weights:
                        table[variable.path] = float(mult)
                break
    return table


def apply_lr_multipliers(optimizer, model, lr_multipliers):
    """Give groups of variables their own learning rate (a multiple of the optimizer's).

    Wraps ``update_step`` of this optimizer instance (of the inner optimizer of a
    ``LossScaleOptimizer``) so each variable is updated with ``learning_rate *
    multiplier``. Works for every Keras 3 optimizer and under tf.distribute; the
    optimizer's class and config are unchanged (saved models need no custom object),
    so call this again after recompiling or reloading. Weight decay keeps using the
    base learning rate.

    Args:
        optimizer: A ``keras.optimizers.Optimizer``, before or after ``build``.
        model: The model whose variables it trains.
        lr_multipliers: ``(layer-name prefix, multiplier)`` pairs (``Phase.lr_multipliers``).

    Returns:
        ``optimizer``. Unchanged when no multiplier differs from 1.0.

    Example:
        >>> apply_lr_multipliers(opt, model, [("conv2_", 0.1), ("conv3_", 0.3)])
    """
    table = lr_multiplier_table(model, lr_multipliers)
    if not table:
        return optimizer
    return scale_learning_rate_per_variable(optimizer, table)
