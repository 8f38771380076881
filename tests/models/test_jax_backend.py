"""The model builders are backend-neutral Keras 3: they build, train and predict under JAX, without TensorFlow.

The check runs in a child process with ``KERAS_BACKEND=jax`` (this process already runs Keras on
TensorFlow, and Keras picks its backend once, at import). It needs the ``jax`` extra
(``pip install -e ".[jax]"``, part of ``.[test]``) and is skipped without it. It is in the slow set
(``pytest -m slow``, which CI runs): the child process takes about 50 s on 2 cores.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("jax") is None,
        reason="jax is not installed: the child process runs Keras with KERAS_BACKEND=jax (pip install -e '.[jax]')",
    ),
    pytest.mark.slow,  # a child process building, training and predicting ResNet-20 and ResNet-18: about 50 s
]

ROOT = Path(__file__).resolve().parents[2]

# ResNet-20 (option-A shortcuts) with its 10-class head: 269,722 trainable parameters plus
# 1,376 BatchNorm moving statistics, the same count as under TensorFlow (tests/models/test_specs.py).
RESNET20_PARAMS = 271_098
RESNET20_TRAINABLE = 269_722
# ResNet-18 with a 10-class head: 11,699,112 (1000 classes) - 513,000 + 5,130.
RESNET18_PARAMS = 11_191_242

CHILD = """
    import json
    import sys

    import numpy as np

    import keras_resnet as kr
    import keras
    from keras_resnet.compat import fuse_batch_norm

    facts = {"backend": keras.backend.backend()}
    rng = np.random.default_rng(0)
    for name, size in (("resnet20", 32), ("resnet18", 64)):
        model = kr.build_resnet(name, num_classes=10, input_shape=(size, size, 3), include_preprocessing=True)
        fused = fuse_batch_norm(model)  # kresnet train's BatchNorm speed-up is TensorFlow's kernel: a no-op here
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy")
        images = rng.integers(0, 256, size=(4, size, size, 3), dtype=np.uint8)
        labels = np.arange(4) % 10
        history = model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
        probs = np.asarray(model.predict(images, verbose=0), dtype=np.float64)
        facts[name] = {
            "params": model.count_params(),
            "trainable": sum(int(np.prod(w.shape)) for w in model.trainable_weights),
            "plain_params": kr.build_resnet(name, num_classes=10, input_shape=(size, size, 3)).count_params(),
            "preprocessing_weights": len(model.get_layer("preprocessing").weights),
            "first_layer": model.layers[1].name,
            "fused_batchnorm_layers": fused,
            "loss": history.history["loss"],
            "shape": list(probs.shape),
            "finite": bool(np.isfinite(probs).all()),
            "sums": probs.sum(axis=1).tolist(),
        }
    facts["tensorflow_imported"] = sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow."))
    print("FACTS " + json.dumps(facts))
    """


@pytest.fixture(scope="module")
def jax_facts():
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD)], capture_output=True, text=True,
                            timeout=600, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-4000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("FACTS ")]
    assert lines, (result.stdout[-2000:], result.stderr[-2000:])
    return json.loads(lines[-1][len("FACTS "):])


def test_the_child_process_runs_keras_on_jax_without_importing_tensorflow(jax_facts):
    assert jax_facts["backend"] == "jax"
    assert jax_facts["tensorflow_imported"] == [], "keras_resnet.models imported TensorFlow under KERAS_BACKEND=jax"


@pytest.mark.parametrize("name", ["resnet20", "resnet18"])
def test_one_fit_step_and_predict_under_jax(jax_facts, name):
    facts = jax_facts[name]
    assert facts["first_layer"] == "preprocessing"
    assert facts["fused_batchnorm_layers"] == 0
    assert len(facts["loss"]) == 1 and math.isfinite(facts["loss"][0]), facts["loss"]
    assert facts["shape"] == [4, 10]
    assert facts["finite"]
    assert facts["sums"] == pytest.approx([1.0] * 4, abs=1e-4)


def test_parameter_counts_under_jax_are_the_tensorflow_ones(jax_facts):
    resnet20 = jax_facts["resnet20"]
    assert resnet20["params"] == RESNET20_PARAMS
    assert resnet20["trainable"] == RESNET20_TRAINABLE
    assert jax_facts["resnet18"]["params"] == RESNET18_PARAMS
    for name in ("resnet20", "resnet18"):  # the preprocessing layer holds constants, not weights
        assert jax_facts[name]["preprocessing_weights"] == 0
        assert jax_facts[name]["params"] == jax_facts[name]["plain_params"]
