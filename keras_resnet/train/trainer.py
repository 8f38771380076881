"""`train`: one run from a `TrainConfig` to a complete run directory.

Order of work: strategy (must come first for multi-worker) -> seeds, determinism,
precision -> datasets -> run records -> model in ``strategy.scope()`` -> for each
phase of `plan_phases`: freeze, compile, ``model.fit`` with the callbacks -> plots ->
evaluation of the saved ``model.keras`` -> ``metrics.json``.

**Resuming.** Running again with the same ``run_dir`` continues an interrupted run
(Ctrl-C, SIGTERM, ``kill -9``, a lost machine) from its last completed epoch: each
phase keeps a crash-safe ``BackupAndRestore`` backup under ``RUN/backup/`` until the
whole run has finished; ``history.csv`` continues where it stopped. A finished run
directory is not trained again.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
import warnings
from pathlib import Path

from keras_resnet import runs

BACKUP_DIR = "backup"
#: Training images the whitening stem (``model.stem_init``) computes its patch statistics from.
WHITENING_IMAGES = 1024
LOGS_DIR = "logs"


class RunFinishedError(ValueError):
    """The run directory already holds a finished run."""


def _train_steps(dataset, datasets, batch_size: int, cap: int | None) -> int:
    cardinality = int(dataset.cardinality())
    if cardinality < 0:
        size = int((datasets.split_sizes or {}).get("train", 0))
        if size <= 0:
            raise ValueError(
                "Cannot tell the number of training steps per epoch: the train dataset's cardinality is unknown "
                "and split_sizes has no 'train'. Set training.steps_per_epoch."
            )
        cardinality = math.ceil(size / batch_size)
    return min(cardinality, cap) if cap else cardinality


def _epoch_stream(datasets, config, steps: int, log=print):
    """``start_epoch -> endless train dataset`` from ``datasets.train_from_epoch``, or None.

    None (train on ``datasets.train`` as before) for datasets without that method
    (e.g. hand-made ones), and when ``training.steps_per_execution`` does not divide
    ``steps``: Keras would then read past each epoch's end of the endless stream.
    """
    from_epoch = getattr(datasets, "train_from_epoch", None)
    if from_epoch is None or not getattr(datasets, "steps_per_epoch", None):
        return None
    per_execution = config.training.steps_per_execution
    if steps % per_execution:
        log(f"Note: training.steps_per_execution={per_execution} does not divide the {steps} steps/epoch, so the "
            "epoch-keyed data stream is off: a resumed run will not see exactly the batches of an uninterrupted one.")
        return None
    return lambda start_epoch: from_epoch(start_epoch, steps)


@contextlib.contextmanager
def unwarned_validation_end(val_ds, train_sized: bool):
    """Keep Keras from warning that training is interrupted when a validation split of unknown size ends.

    Keras 3 says "Your input ran out of data; interrupting training" whenever a
    dataset of unknown cardinality runs out, so every validation pass over such a
    split (``data.cache: none`` with ``on_bad_image: skip``, whose size is not
    counted up front) printed it, though nothing is interrupted. Wrap
    ``model.fit`` in it; it silences that message only when the val split's size
    is unknown and ``train_sized`` says the training input cannot run short, so
    the silenced warning can only be validation's.

    Args:
        val_ds: The ``validation_data`` given to ``fit`` (or None).
        train_sized: True when the training input holds at least the steps
            ``fit`` asks for (the trainer's epoch-keyed stream, whose size is
            asserted; `keras_resnet.tune`'s ``repeat().take(...)``).
    """
    if val_ds is None or not train_sized or int(val_ds.cardinality()) >= 0:
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)
        yield


def build_model(model_config, num_classes: int, image_size, new_head: bool = False, preprocessing: dict | None = None):
    """The ResNet of a ``ModelConfig`` for ``num_classes`` and ``image_size`` inputs.

    Args:
        model_config: `keras_resnet.train.config.ModelConfig`.
        num_classes: Classes of the head.
        image_size: ``(height, width)``.
        new_head: Load ``model_config.weights`` into the backbone only, leaving the
            head freshly initialised (fine-tuning with ``finetune.head_epochs > 0``).
        preprocessing: The data's preprocessing spec, built into the model as its
            first layer (it then takes raw pixels); None for a model taking
            normalised input.

    Returns:
        A functional ``keras.Model`` (softmax outputs, float32 head).
    """
    from keras_resnet.models import build_resnet
    from keras_resnet.models.specs import get_spec
    from keras_resnet.models.weights import load_pretrained

    partial = bool(getattr(model_config, "allow_partial_weights", False))
    model = build_resnet(
        model_config.name,
        num_classes=num_classes,
        input_shape=(int(image_size[0]), int(image_size[1]), 3),
        weights=None if new_head or partial else model_config.weights,
        dropout=model_config.dropout,
        pooling=model_config.pooling,
        hidden_units=model_config.hidden_units,
        depth=model_config.depth,
        width_multiplier=model_config.width_multiplier,
        include_preprocessing=preprocessing is not None,
        preprocessing=preprocessing,
    )
    if (new_head or partial) and model_config.weights is not None:
        # Fine-tuning trains a fresh head even when the source model had as many classes;
        # model.allow_partial_weights loads what fits and reports the rest.
        load_pretrained(model, get_spec(model_config.name, model_config.depth), model_config.weights,
                        skip_head=new_head, allow_partial=partial)
    return model


def compile_model(model, config, phase, steps_per_epoch: int) -> None:
    """Compile ``model`` for one phase: optimizer with its schedule, loss, metrics.

    Call inside ``strategy.scope()``, after `freeze`.
    """
    import keras

    from keras_resnet.train.finetune import apply_lr_multipliers
    from keras_resnet.train.optim import build_optimizer
    from keras_resnet.train.schedules import build_schedule, scaled_learning_rate

    base = scaled_learning_rate(config.optimizer.learning_rate, config.data.batch_size,
                                config.optimizer.reference_batch_size)
    schedule = build_schedule(config.schedule, base * phase.learning_rate_scale, phase.epochs, steps_per_epoch)
    optimizer = build_optimizer(config.optimizer, schedule, model)
    apply_lr_multipliers(optimizer, model, phase.lr_multipliers)
    num_classes = int(model.output.shape[-1])
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.training.label_smoothing),
        metrics=[
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.TopKCategoricalAccuracy(k=min(5, num_classes), name="top5_accuracy"),
        ],
        steps_per_execution=config.training.steps_per_execution,
    )


def backup_dir(run_dir: Path, phase_name: str, chief: bool, worker: str) -> Path:
    """This worker's ``BackupAndRestore`` directory for one phase (non-chief workers get their own)."""
    return run_dir / BACKUP_DIR / (phase_name if chief else f"{phase_name}-{worker}")


def remove_backups(run_dir: Path, phases, chief: bool, worker: str) -> None:
    """Delete this worker's backups once the run is complete, then the backup folder if empty.

    Each worker removes only its own directories: under ``multi_worker`` the others
    may still be writing theirs into the shared run directory.
    """
    for phase in phases:
        shutil.rmtree(backup_dir(run_dir, phase.name, chief, worker), ignore_errors=True)
    try:
        (run_dir / BACKUP_DIR).rmdir()
    except OSError:
        pass  # another worker's backup is still there; that worker removes it


def whitening_images(datasets, count: int = WHITENING_IMAGES):
    """About ``count`` training images, spread evenly over the train split, as the model takes them.

    Reads the decoded train images once (a memory-cached split: a copy; ``data.cache:
    none``: a decoding pass), un-augmented when ``datasets`` has a `TrainStream`
    (``datasets.train_stream.base``); otherwise the first ``count`` of ``datasets.train``.

    Returns:
        A numpy NHWC array.
    """
    import numpy as np

    stream = getattr(datasets, "train_stream", None)
    if stream is not None:
        source = stream.base.shard(max(1, stream.size // count), 0).take(count)
    else:
        source = datasets.train.unbatch().take(count)
    images = [np.asarray(example[0]) for example in source.as_numpy_iterator()]
    if not images:
        raise ValueError("model.stem_init needs training images to compute the whitening from; the train split is empty")
    return np.stack(images)


def prepare_model(model, config, datasets, log=print) -> None:
    """What the config asks of a freshly built model before its first phase is compiled.

    ``training.fused_batchnorm``: BatchNorm on TensorFlow's fused kernel
    (`keras_resnet.compat.fuse_batch_norm`); ``model.stem_init`` (`init_stem`);
    ``model.zero_init_residual`` (`keras_resnet.models.zero_init`). A resumed run applies
    them too; the restored checkpoint then overwrites the weights.
    """
    import keras

    from keras_resnet.compat import fuse_batch_norm, fused_batch_norm_kernel_available

    if config.training.fused_batchnorm:
        fused = fuse_batch_norm(model)
        dtype = keras.mixed_precision.global_policy().compute_dtype
        if fused and not fused_batch_norm_kernel_available(dtype):
            log(f"BatchNormalization: TensorFlow has no fused kernel for {dtype} on this machine, so Keras' own "
                f"layer runs (training.fused_batchnorm has no effect here)")
        elif fused:
            log(f"BatchNormalization: {fused} layers run on TensorFlow's fused kernel (training.fused_batchnorm)")
    init_stem(model, config, datasets, log)
    if config.model.zero_init_residual:
        from keras_resnet.models.zero_init import zero_init_residual_branches

        names = zero_init_residual_branches(model)
        log(f"Residual branches: {len(names)} end layers ({names[0]} ...) start at zero (model.zero_init_residual)")


def init_stem(model, config, datasets, log=print) -> None:
    """Apply ``model.stem_init`` to a freshly built model (``random``: nothing to do).

    A resumed run computes it too; the restored checkpoint then overwrites it.
    """
    if config.model.stem_init == "random":
        return
    from keras_resnet.models.whitening import init_stem_whitening

    summary = init_stem_whitening(model, whitening_images(datasets), trainable=config.model.stem_init == "whitening",
                                  seed=config.training.seed)
    log(f"Stem {summary['layer']}: PCA whitening of {summary['patches']:,} patches from {summary['images']} training "
        f"images, {summary['components']} directions (+/-) holding {summary['explained_variance']:.1%} of the "
        f"variance{', frozen' if config.model.stem_init == 'whitening_frozen' else ''}")


def freeze_for_phase(model, config, phase) -> None:
    """Set which layers train in ``phase``: `freeze` by the phase's policy, and the stem
    convolution kept fixed for ``model.stem_init: whitening_frozen`` (`freeze` resets
    ``trainable`` by stage). Call before compiling the phase.
    """
    from keras_resnet.models.naming import STEM_CONV
    from keras_resnet.train.finetune import freeze

    freeze(model, phase.freeze, train_batchnorm=phase.train_batchnorm)
    if config.model.stem_init == "whitening_frozen":
        model.get_layer(STEM_CONV).trainable = False


def make_callbacks(config, run_dir: Path, phase_name: str, chief: bool, worker: str, extra=(),
                   staged: runs.StagedFiles | None = None, monitor: str | None = None) -> list:
    """The callbacks of one phase, in the order they must run at each epoch end.

    NaN guard, learning-rate logging, ``history.csv``, checkpoints, TensorBoard, early
    stopping, ``extra``, and last the backup (so an epoch is only marked done once its
    files are written). ``monitor`` (default ``training.monitor``) is the metric of
    ``best.keras`` and early stopping. ``history.csv``, the checkpoints and the backup go through
    ``staged`` (`keras_resnet.runs.StagedFiles`), which the backup commits: they are
    replaced together or not at all. Non-chief workers only keep their own backup.
    """
    import keras

    from keras_resnet.train import callbacks as cb

    staged = staged if staged is not None else runs.StagedFiles()
    backup = backup_dir(run_dir, phase_name, chief, worker)
    if not chief:
        return [cb.StopOnNaN(run_dir), *extra, cb.AtomicBackupAndRestore(backup, delete_checkpoint=False, staged=staged)]
    t = config.training
    monitor = monitor or t.monitor
    callbacks = [
        cb.StopOnNaN(run_dir),
        cb.LearningRateLogger(),
        cb.HistoryCSV(run_dir / runs.HISTORY_FILE, staged=staged),
        cb.ModelCheckpoints(run_dir, monitor=monitor, staged=staged),
    ]
    if t.tensorboard and _tensorboard_available():
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / LOGS_DIR), write_graph=False))
    if t.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=t.early_stopping_patience))
    callbacks += list(extra)
    callbacks.append(cb.AtomicBackupAndRestore(backup, delete_checkpoint=False, staged=staged))
    return callbacks


def with_model_image_size(config):
    """``config`` with ``data.image_size`` set to the model's default size when it is None."""
    import dataclasses

    from keras_resnet.models.specs import get_spec

    if config.data.image_size is not None:
        return config
    size = get_spec(config.model.name, config.model.depth).default_size
    return dataclasses.replace(config, data=dataclasses.replace(config.data, image_size=size))


def _tensorboard_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def run_dir_for(config) -> Path:
    """``config.run_dir``, or a new ``saved_models/<model>-<dataset>-<time>`` directory.

    Raises:
        ValueError: for ``multi_worker`` without an explicit run_dir (workers must agree on it),
            and for a run_dir that is an existing file.
    """
    from keras_resnet.train.records import default_run_dir

    if config.run_dir:
        path = Path(config.run_dir)
        if path.exists() and not path.is_dir():
            raise ValueError(
                f"The run directory {path} is an existing file, not a directory. Choose a directory (a new one, or a "
                f"run directory to resume). Received: run_dir={config.run_dir!r}"
            )
        return path
    if config.training.strategy == "multi_worker":
        raise ValueError("strategy 'multi_worker' needs an explicit run_dir shared by all workers. Received: run_dir=None")
    return default_run_dir(config.model.name, config.data.dataset)


def prepare_run_dir(config, log=print) -> Path:
    """The run directory of ``config``, checked before any TensorFlow work.

    Refuses a finished run and a resume whose config changes the run (before
    ``config.yaml`` is overwritten), checks that the folder can be written, and
    removes temporaries left by a run killed while writing.

    Returns:
        The run directory.

    Raises:
        RunFinishedError: it holds a finished run.
        ValueError: resuming with a config that differs in what the run depends on.
        OSError: the folder cannot be written.
    """
    from keras_resnet.train.resume import check_resume_config

    run_dir = run_dir_for(config)
    if (run_dir / runs.METRICS_FILE).is_file() and not (run_dir / BACKUP_DIR).exists():
        raise RunFinishedError(
            f"{run_dir} already holds a finished run ({runs.METRICS_FILE}, no backup to resume). "
            "Choose another --run-dir, or evaluate it with `kresnet evaluate`."
        )
    check_resume_config(run_dir, config, log, BACKUP_DIR)
    runs.check_writable_folder(run_dir, "run")
    for folder in (run_dir, *sorted(p for p in (run_dir / BACKUP_DIR).glob("*") if p.is_dir())):
        runs.remove_stale_temporaries(folder)
    return run_dir


def _announce_phase(phase, done: int, num_phases: int, log) -> None:
    """Say whether a phase is complete, resuming, or starting (the latter only with several phases)."""
    if done >= phase.end_epoch:
        log(f"Phase {phase.name!r}: already complete (epochs {phase.initial_epoch + 1}-{phase.end_epoch}).")
    elif done > phase.initial_epoch:
        log(f"Phase {phase.name!r}: resuming after epoch {done} of {phase.end_epoch}.")
    elif num_phases > 1:
        log(f"Phase {phase.name!r}: epochs {phase.initial_epoch + 1}-{phase.end_epoch}, freeze={phase.freeze}.")


def train(config, datasets=None, callbacks=(), log=print) -> Path:
    """Train a model as ``config`` says and leave a complete run directory.

    Args:
        config: A `keras_resnet.train.config.TrainConfig` (see `load_config`).
        datasets: Prebuilt ``keras_resnet.data.Datasets`` (or any object with its
            fields), or a zero-argument function returning one, called once the
            strategy exists (needed for ``multi_worker``, whose strategy must be
            created before any other TensorFlow work); default
            ``build_datasets(config.data, seed=config.training.seed)``.
        callbacks: Extra Keras callbacks for every phase.
        log: Where progress lines go (``print``).

    Returns:
        The run directory, holding ``model.keras``, ``best.keras``, ``config.yaml``,
        ``labels.txt``, ``preprocessing.json``, ``dataset.json``, ``versions.json``,
        ``history.csv``, ``metrics.json``, ``training_curves.png``,
        ``confusion_matrix.png`` and TensorBoard ``logs/``.

    Raises:
        TrainingDivergedError: the loss became NaN/inf (last good checkpoint kept).
        RunFinishedError: ``run_dir`` holds a finished run.
        ValueError: for bad config values or a data problem.

    Example:
        >>> run_dir = train(load_config("configs/cifar10_resnet20.yaml", overrides={"training.epochs": 1}))
    """

    from keras_resnet.cpu_kernels import is_x86_64_linux, onednn_log_line, onednn_record
    from keras_resnet.train.callbacks import effective_monitor, fit_verbosity
    from keras_resnet.train.finetune import parameter_table, plan_phases
    from keras_resnet.train.precision import resolve_precision
    from keras_resnet.train.strategy import configure_process, distribute_dataset_options, is_chief, make_strategy, task_id

    config = with_model_image_size(config)
    phases = plan_phases(config)
    run_dir = prepare_run_dir(config, log)
    strategy = make_strategy(config.training.strategy)
    precision = resolve_precision(config.training.precision, tpu=config.training.strategy == "tpu")
    cpu_kernels = onednn_record()
    configure_process(config.training.seed, config.training.deterministic, precision.policy)
    if datasets is None:
        from keras_resnet.data.pipeline import build_datasets

        datasets = build_datasets(config.data, seed=config.training.seed)
    elif callable(datasets):
        datasets = datasets()
    chief, worker = is_chief(), task_id()
    if chief:
        from keras_resnet.train.records import write_run_records

        write_run_records(run_dir, config, datasets, precision=precision, onednn=cpu_kernels)
    train_ds = datasets.train
    if config.training.steps_per_epoch:
        train_ds = train_ds.take(config.training.steps_per_epoch)
    steps = _train_steps(train_ds, datasets, config.data.batch_size, config.training.steps_per_epoch)
    epoch_stream = _epoch_stream(datasets, config, steps, log)
    train_ds = distribute_dataset_options(train_ds, config.training.strategy)
    val_ds = distribute_dataset_options(datasets.val, config.training.strategy)
    monitor = effective_monitor(config.training.monitor, has_validation=val_ds is not None)

    with strategy.scope():
        model = build_model(config.model, len(datasets.class_names), datasets.image_size,
                            new_head=config.finetune.head_epochs > 0, preprocessing=datasets.preprocessing)
    prepare_model(model, config, datasets, log)
    log(f"Run directory: {run_dir}  (re-run with --run-dir {run_dir} to resume if interrupted)")
    log(f"{config.model.name}: {model.count_params():,} parameters, {len(datasets.class_names)} classes, "
        f"{steps} steps/epoch at global batch {config.data.batch_size}, {strategy.num_replicas_in_sync} replica(s), "
        f"precision {precision.policy} ({precision.reason})")
    if is_x86_64_linux():
        log(onednn_log_line(cpu_kernels))
    if monitor != config.training.monitor:
        log(f"No validation split (data.validation_fraction: 0, all {datasets.split_sizes.get('train', '?')} training "
            f"images train): best.keras and early stopping follow the training {monitor!r} instead of "
            f"{config.training.monitor!r}.")
    verbose = fit_verbosity(config.training.progress) if chief else 0  # one line per epoch when not a terminal
    started = time.time()
    for phase in phases:
        freeze_for_phase(model, config, phase)
        if chief and (len(phases) > 1 or phase.freeze != "none"):
            log(f"Phase {phase.name!r} parameters (freeze={phase.freeze}):\n{parameter_table(model)}")
        with strategy.scope():
            compile_model(model, config, phase, steps)
        staged = runs.StagedFiles()
        phase_callbacks = make_callbacks(config, run_dir, phase.name, chief, worker, callbacks, staged=staged,
                                         monitor=monitor)
        done = phase_callbacks[-1].restored_epoch
        _announce_phase(phase, done, len(phases), log)
        if epoch_stream is not None:  # epoch e's batches depend on (seed, e) only: a resumed run sees the same data
            train_ds = distribute_dataset_options(epoch_stream(max(done, phase.initial_epoch)), config.training.strategy)
        try:
            with unwarned_validation_end(val_ds, train_sized=epoch_stream is not None):
                model.fit(
                    train_ds,
                    steps_per_epoch=steps if epoch_stream is not None else None,
                    validation_data=val_ds,
                    epochs=phase.end_epoch,
                    initial_epoch=phase.initial_epoch,
                    callbacks=phase_callbacks,
                    verbose=verbose,
                    shuffle=False,  # the pipeline shuffles
                )
        finally:
            staged.discard()  # an epoch end that failed midway (full disk, Ctrl-C) leaves the previous epoch's files
        if model.stop_training and phase is not phases[-1]:
            log(f"Early stopping in phase {phase.name!r}; later phases skipped.")
            break
    if chief:
        finish_run(run_dir, model, datasets, config, time.time() - started, log)
    remove_backups(run_dir, phases, chief, worker)
    return run_dir


def finish_run(run_dir: Path, model, datasets, config, seconds: float, log=print) -> dict | None:
    """Save the final model, plot the curves, evaluate ``model.keras`` and write ``metrics.json``.

    ``train_seconds`` in ``metrics.json`` is the summed wall time of the epochs in
    ``history.csv``, every session of a resumed run included (``seconds``, this
    call's, only for a run directory whose history lacks epoch times).

    With ``training.tta`` other than ``none`` the evaluation also reports that
    test-time augmentation, beside the plain figures (a ``"tta"`` section in
    ``metrics.json`` and a line of the report; `keras_resnet.train.evaluate.evaluate_model`).

    Returns:
        The evaluation metrics, or None when ``training.evaluate_split`` is ``none``
        or the dataset lacks that split.
    """
    import keras

    from keras_resnet.plots import CURVES_FILE, plot_history
    from keras_resnet.train.callbacks import history_seconds, inference_view, read_history
    from keras_resnet.train.evaluate import evaluate_model, format_report, write_evaluation

    metadata = {"labels": list(datasets.class_names), "preprocessing": datasets.preprocessing}
    runs.atomic_save_model(inference_view(model), run_dir / runs.MODEL_FILE, metadata=metadata)
    history = read_history(run_dir / runs.HISTORY_FILE)
    if history:
        plot_history(history, run_dir / CURVES_FILE)
    summed = history_seconds(history)
    seconds = summed if summed is not None else seconds
    split = config.training.evaluate_split
    dataset = {"test": datasets.test, "val": datasets.val}.get(split)
    if dataset is None and split == "test" and datasets.val is not None:
        split, dataset = "val", datasets.val
    if dataset is None:
        runs.atomic_write_json(run_dir / runs.METRICS_FILE, {"split": None, "train_seconds": round(seconds, 1),
                                                             "final_epoch": history[-1] if history else None})
        return None
    saved = keras.models.load_model(run_dir / runs.MODEL_FILE, compile=False)
    metrics = evaluate_model(saved, dataset, list(datasets.class_names), tta=config.training.tta)
    extra = {"model": runs.MODEL_FILE, "dataset": config.data.dataset, "train_seconds": round(seconds, 1),
             "epochs": len(history)}
    write_evaluation(run_dir, metrics, split, extra)
    log(format_report(metrics, title=f"Evaluation of {run_dir / runs.MODEL_FILE} on the {split} split"))
    return metrics
