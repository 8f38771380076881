"""MirroredStrategy over two logical CPUs and MultiWorkerMirroredStrategy over two local workers.

Each runs in fresh processes: logical devices and collective ops must be configured
before TensorFlow initialises.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
HELPERS = REPO / "tests" / "helpers"  # the `synthetic` module, for subprocess scripts

COMMON = """
import json, sys
sys.path.insert(0, {helpers!r})
import numpy as np
import keras
from synthetic import make_datasets, tiny_config

class ReplicaWeights(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        per_replica = []
        for v in self.model.trainable_weights:  # BatchNorm statistics are per-replica by design (sync-on-read)
            values = getattr(v.value, "values", None) or (v.value,)
            per_replica.append([np.asarray(x).tolist() for x in values])
        json.dump({{"replicas": len(per_replica[0]), "weights": per_replica,
                    "kernel_sum": float(sum(np.abs(np.asarray(v.value.values[0] if hasattr(v.value, "values") else v.value)).sum()
                                            for v in self.model.trainable_weights))}}, open({out!r}, "w"))
"""

MIRRORED = COMMON + """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from keras_resnet.train.trainer import train
train(tiny_config({run!r}, epochs=2, strategy="mirrored", evaluate_split="none"), datasets=make_datasets(), callbacks=[ReplicaWeights()])
"""

WORKER = COMMON + """
from synthetic import interrupt_at
from keras_resnet.train.trainer import train
stop = [interrupt_at({interrupt_before!r})] if {interrupt_before!r} is not None else []
try:
    train(tiny_config({run!r}, epochs=2, strategy="multi_worker"), datasets=make_datasets,
          callbacks=[ReplicaWeights(), *stop])
except KeyboardInterrupt:  # the simulated Ctrl-C, on every worker before the same epoch
    print("interrupted", flush=True)
"""


def _env(**extra):
    return {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "", **extra}


@pytest.mark.slow
def test_mirrored_two_logical_cpus_keeps_replicas_identical(tmp_path):
    out = tmp_path / "weights.json"
    script = MIRRORED.format(helpers=str(HELPERS), out=str(out), run=str(tmp_path / "run"))
    result = subprocess.run([sys.executable, "-c", script], env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 replica(s)" in result.stdout
    record = json.loads(out.read_text())
    assert record["replicas"] == 2
    for values in record["weights"]:
        np.testing.assert_array_equal(np.asarray(values[0]), np.asarray(values[1]))
    assert (tmp_path / "run" / "model.keras").is_file() and (tmp_path / "run" / "metrics.json").is_file()


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


_PORT_ERRORS = ("Address already in use", "Failed to add port", "No address added")


def _run_workers(tmp_path, run_dir, count=2, deadline_s=240, interrupt_before=None):
    """Start `count` WORKER processes on free 127.0.0.1 ports; return (return codes, logs).

    They train into ``run_dir``; with ``interrupt_before`` set, every worker is interrupted
    before that (0-based) epoch, as a Ctrl-C on the whole job would.

    Each worker's output goes to a file (no pipe can fill up); every child still running
    at the deadline, after another one failed, or when anything raises is killed.
    """
    workers = [f"127.0.0.1:{p}" for p in _free_ports(count)]
    procs, logs = [], []
    try:
        for index in range(count):
            tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
            script = WORKER.format(helpers=str(HELPERS), out=str(tmp_path / f"worker{index}.json"),
                                   run=str(run_dir), interrupt_before=interrupt_before)
            log = tmp_path / f"worker{index}{'-interrupted' if interrupt_before is not None else ''}.log"
            logs.append(log)
            with open(log, "w") as stream:
                procs.append(subprocess.Popen([sys.executable, "-c", script], env=_env(TF_CONFIG=tf_config),
                                              stdout=stream, stderr=subprocess.STDOUT))
        end = time.monotonic() + deadline_s
        # A worker that fails leaves the others blocked in collectives: stop at the first failure.
        while time.monotonic() < end and any(p.poll() is None for p in procs):
            if any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.5)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [p.returncode for p in procs], [log.read_text() for log in logs]


def test_keras_multi_worker_fixes_are_idempotent_and_leave_single_worker_reduction_alone():
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    from keras_resnet.train.strategy import install_keras_multi_worker_fixes

    assert install_keras_multi_worker_fixes() is True
    patched = tf_trainer.reduce_per_replica
    assert install_keras_multi_worker_fixes() is True
    assert tf_trainer.reduce_per_replica is patched  # not wrapped twice
    logs = {"loss": tf.constant(1.5), "accuracy": tf.constant(0.25)}
    reduced = tf_trainer.reduce_per_replica(logs, tf.distribute.get_strategy(), reduction="auto")
    assert {k: float(v) for k, v in reduced.items()} == {"loss": 1.5, "accuracy": 0.25}


def _run_workers_retrying_ports(tmp_path, run_dir, **kwargs):
    """`_run_workers`, once more if a port picked by `_free_ports` was taken before a worker bound it."""
    for attempt in range(2):
        directory = tmp_path / f"attempt{attempt}"
        directory.mkdir(parents=True)
        codes, logs = _run_workers(directory, run_dir, **kwargs)
        if codes == [0, 0] or not any(error in log for log in logs for error in _PORT_ERRORS):
            break
    assert codes == [0, 0], "\n----\n".join(log[-3000:] for log in logs)
    return directory, logs


@pytest.mark.timeout(600)
@pytest.mark.slow
def test_multi_worker_run_interrupted_after_epoch_1_resumes_with_identical_weights(tmp_path):
    run = tmp_path / "run"
    _, logs = _run_workers_retrying_ports(tmp_path / "first", run, interrupt_before=1)
    assert all("interrupted" in log for log in logs)
    assert len((run / "history.csv").read_text().splitlines()) == 2  # header + epoch 1
    assert (run / "backup").is_dir() and not (run / "metrics.json").exists()

    directory, logs = _run_workers_retrying_ports(tmp_path / "resumed", run)
    assert all("2 replica(s)" in log and "resuming after epoch 1 of 2" in log for log in logs)
    chief, other = (json.loads((directory / f"worker{i}.json").read_text()) for i in range(2))
    assert chief["replicas"] == other["replicas"] == 1  # one local replica per worker process
    # Each worker trains on its own half of every global batch (auto-shard DATA), so only the
    # cross-worker gradient all-reduce keeps the weights equal, also after both restored a backup.
    for a, b in zip(chief["weights"], other["weights"]):
        np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(b[0]))
    history = (run / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["1", "2"], history  # the chief's, once per epoch
    assert (run / "model.keras").is_file() and (run / "metrics.json").is_file()
    assert not (run / "backup").exists()
