"""Shared test set-up: quiet TensorFlow, the helpers on sys.path, and a clean Keras state around every test."""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Helper modules shared by the test packages (`synthetic`, `tiny_run`); the suite runs with
# --import-mode=importlib, which does not put test folders on sys.path.
sys.path.insert(0, str(Path(__file__).with_name("helpers")))

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Keep global Keras state (dtype policy, layer-name counters) from leaking between tests."""
    keras.backend.clear_session()
    yield
    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session()
