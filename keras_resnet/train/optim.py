"""Optimizers: momentum SGD (Nesterov optional) and AdamW, with weight decay on kernels only."""

from __future__ import annotations


def decay_excluded_variables(model) -> list:
    """Trainable variables that weight decay skips: BatchNorm parameters and biases.

    These are exactly the trainable variables with fewer than two dimensions
    (kernels are 2-D or 4-D).

    Returns:
        A list of variables for ``optimizer.exclude_from_weight_decay(var_list=...)``.
    """
    return [v for v in model.trainable_variables if len(v.shape) < 2]


def build_optimizer(config, learning_rate, model=None):
    """A Keras optimizer from an ``OptimizerConfig``.

    Args:
        config: `keras_resnet.train.config.OptimizerConfig`.
        learning_rate: A float or a ``LearningRateSchedule``.
        model: When given and ``config.decay_all_variables`` is False, its BatchNorm
            parameters and biases are excluded from weight decay.

    With ``config.ema_momentum`` set, the optimizer also keeps an exponential moving
    average of the weights (``use_ema``) and ``fit`` ends by writing it into the model.

    Returns:
        ``keras.optimizers.SGD`` or ``keras.optimizers.AdamW`` (unbuilt).

    Example:
        >>> opt = build_optimizer(OptimizerConfig(name="sgd", nesterov=True), 0.1, model)
    """
    import keras

    weight_decay = config.weight_decay or None
    # Keras keeps the average in the optimizer (saved in the run's backup) and writes it
    # into the model at the end of `fit`, so model.keras holds the averaged weights.
    averaging = {} if config.ema_momentum is None else {"use_ema": True, "ema_momentum": config.ema_momentum}
    if config.name == "sgd":
        optimizer = keras.optimizers.SGD(
            learning_rate=learning_rate,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=weight_decay,
            clipnorm=config.clipnorm,
            **averaging,
        )
    elif config.name == "adamw":
        optimizer = keras.optimizers.AdamW(
            learning_rate=learning_rate,
            weight_decay=config.weight_decay,
            beta_1=config.beta_1,
            beta_2=config.beta_2,
            epsilon=config.epsilon,
            clipnorm=config.clipnorm,
            **averaging,
        )
    else:
        raise ValueError(f"Unknown optimizer. Expected 'sgd' or 'adamw'. Received: optimizer.name={config.name!r}")
    if weight_decay and model is not None and not config.decay_all_variables:
        optimizer.exclude_from_weight_decay(var_list=decay_excluded_variables(model))
    return optimizer
