"""Learning-rate schedules: linear warmup followed by constant, step, cosine or linear decay.

One Keras ``LearningRateSchedule`` covers every recipe in ``configs/``:

* ``step`` (He et al. 2016): the peak rate times ``decay_rate`` at each boundary;
* ``cosine``: half a cosine from the peak to ``final_factor * peak``;
* ``one_cycle``: linear rise to the peak during warmup, then linear decay to
  ``final_factor * peak`` (Smith & Topin 2018), warmup starting at ``peak * start_factor``;
* ``constant``.

The class is registered with Keras (package ``kresnet``) so optimizer states that
hold it can be deserialised once this module is imported. Models saved in run
directories carry no optimizer, so loading them needs nothing from here.
"""

from __future__ import annotations

import math

import keras
from keras import ops

DECAYS = ("constant", "step", "cosine", "one_cycle")


@keras.saving.register_keras_serializable(package="kresnet")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from ``start_factor * peak_lr`` to ``peak_lr``, then a decay.

    Args:
        peak_lr: Learning rate at the end of warmup.
        total_steps: Optimizer steps of the whole schedule (cosine and one-cycle
            reach their final value here).
        warmup_steps: Steps of the linear warmup (0: none).
        decay: ``"constant"``, ``"step"``, ``"cosine"`` or ``"one_cycle"``.
        boundaries: For ``"step"``: the steps at which the rate is multiplied by
            ``decay_rate``.
        decay_rate: Multiplier applied at each step boundary.
        start_factor: The warmup starts at ``start_factor * peak_lr``.
        final_factor: Cosine / one-cycle end at ``final_factor * peak_lr``.

    Example:
        >>> schedule = WarmupSchedule(0.1, total_steps=1000, warmup_steps=100, decay="cosine")
        >>> float(schedule(100))
        0.1
    """

    def __init__(
        self,
        peak_lr: float,
        total_steps: int,
        warmup_steps: int = 0,
        decay: str = "cosine",
        boundaries: tuple = (),
        decay_rate: float = 0.1,
        start_factor: float = 0.0,
        final_factor: float = 0.0,
        name: str = "warmup_schedule",
    ):
        if decay not in DECAYS:
            raise ValueError(f"decay must be one of {DECAYS}. Received: decay={decay!r}")
        if total_steps < 1 or warmup_steps < 0:
            raise ValueError(
                f"Need total_steps >= 1 and warmup_steps >= 0. "
                f"Received: total_steps={total_steps!r}, warmup_steps={warmup_steps!r}"
            )
        self.peak_lr = float(peak_lr)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(min(warmup_steps, total_steps))
        self.decay = decay
        self.boundaries = tuple(int(b) for b in boundaries)
        self.decay_rate = float(decay_rate)
        self.start_factor = float(start_factor)
        self.final_factor = float(final_factor)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = self.peak_lr
        warmup = float(self.warmup_steps)
        if warmup > 0:
            fraction = ops.minimum(step / warmup, 1.0)
            warm_lr = peak * (self.start_factor + (1.0 - self.start_factor) * fraction)
        else:
            warm_lr = ops.convert_to_tensor(peak, "float32")
        decay_span = max(float(self.total_steps) - warmup, 1.0)
        progress = ops.clip((step - warmup) / decay_span, 0.0, 1.0)
        final = peak * self.final_factor
        if self.decay == "cosine":
            decayed = final + (peak - final) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        elif self.decay == "one_cycle":
            decayed = peak + (final - peak) * progress
        elif self.decay == "step":
            passed = sum(ops.cast(step >= float(b), "float32") for b in self.boundaries) if self.boundaries else 0.0
            decayed = peak * ops.power(self.decay_rate, passed)
        else:
            decayed = ops.convert_to_tensor(peak, "float32")
        return ops.where(step < warmup, warm_lr, decayed)

    def get_config(self) -> dict:
        """The constructor arguments (for Keras serialisation)."""
        return {
            "peak_lr": self.peak_lr,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "decay": self.decay,
            "boundaries": list(self.boundaries),
            "decay_rate": self.decay_rate,
            "start_factor": self.start_factor,
            "final_factor": self.final_factor,
            "name": self.name,
        }


def scaled_learning_rate(base_lr: float, global_batch_size: int, reference_batch_size: int | None) -> float:
    """The linear scaling rule (Goyal et al. 2017): ``base_lr * batch / reference``.

    Args:
        base_lr: Learning rate for ``reference_batch_size`` images per step.
        global_batch_size: Images per optimizer step over all replicas.
        reference_batch_size: Batch size ``base_lr`` was set for; None: no scaling.

    Returns:
        The learning rate to use.

    Example:
        >>> scaled_learning_rate(0.1, 1024, 256)
        0.4
    """
    if reference_batch_size is None:
        return float(base_lr)
    return float(base_lr) * global_batch_size / reference_batch_size


def build_schedule(schedule_config, peak_lr: float, epochs: int, steps_per_epoch: int) -> WarmupSchedule:
    """A `WarmupSchedule` from a ``ScheduleConfig`` for ``epochs`` of ``steps_per_epoch``.

    Epoch quantities of the config (warmup_epochs, boundaries) become step counts;
    warmup is capped at half of the schedule so that short runs still decay.

    Args:
        schedule_config: `keras_resnet.train.config.ScheduleConfig`.
        peak_lr: The (already batch-scaled) learning rate after warmup.
        epochs: Epochs the schedule spans.
        steps_per_epoch: Optimizer steps per epoch.

    Returns:
        The schedule.
    """
    total = max(1, epochs * steps_per_epoch)
    return WarmupSchedule(
        peak_lr=peak_lr,
        total_steps=total,
        warmup_steps=min(int(round(schedule_config.warmup_epochs * steps_per_epoch)), total // 2),
        decay=schedule_config.name,
        boundaries=tuple(int(round(b * steps_per_epoch)) for b in schedule_config.boundaries),
        decay_rate=schedule_config.decay_rate,
        start_factor=schedule_config.warmup_start_factor,
        final_factor=schedule_config.final_factor,
    )
