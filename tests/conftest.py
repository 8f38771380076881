"""Shared test set-up: TensorFlow quiet and on the kresnet command's CPU kernels, helpers on sys.path, clean Keras state."""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from keras_resnet.cpu_kernels import default_onednn_on  # noqa: E402

default_onednn_on()  # the tests run TensorFlow's CPU kernels as the kresnet command does (before keras loads it)
# Helper modules shared by the test packages (`synthetic`, `tiny_run`); the suite runs with
# --import-mode=importlib, which does not put test folders on sys.path.
sys.path.insert(0, str(Path(__file__).with_name("helpers")))

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Keep global Keras state (dtype policy, layer-name counters) from leaking between tests.

    ``free_memory=False`` skips the full ``gc.collect()`` Keras runs by default: over a heap holding
    TensorFlow it took 0.35-0.42 s per call here, twice per test, about a quarter of the suite's CPU
    time; Python's own collector still frees cycles as allocation goes on.
    """
    keras.backend.clear_session(free_memory=False)
    yield
    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session(free_memory=False)


@pytest.fixture(scope="session")
def benchmark_script():
    """Loads ``benchmarks/<name>.py`` as a module (benchmarks/ is not a package); one copy per name."""
    import importlib.util

    loaded = {}

    def load(name: str):
        if name not in loaded:
            path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
            spec = importlib.util.spec_from_file_location(f"kresnet_benchmark_{name}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module  # dataclasses and pickling look their module up there
            spec.loader.exec_module(module)
            loaded[name] = module
        return loaded[name]

    return load
