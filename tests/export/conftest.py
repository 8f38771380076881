"""Session fixtures for the export tests: a tiny trained run and one export of each kind."""

import importlib.util
import sys
from pathlib import Path

import pytest


def load_tiny_run_module():
    """Import tests/export/tiny_run.py by path (the suite runs with --import-mode=importlib)."""
    name = "kresnet_tests_tiny_run"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("tiny_run.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


EXPORTS = [
    ("keras", "none"),
    ("savedmodel", "none"),
    ("tflite", "none"),
    ("tflite", "float16"),
    ("tflite", "dynamic"),
    ("tflite", "int8"),
]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """See `tiny_run.build_tiny_run`."""
    return load_tiny_run_module().tiny_run_fixture(tmp_path_factory)


@pytest.fixture(scope="session")
def exports(tiny_run):
    """{(format, quantize): ExportResult} for every format and quantisation, into the run's export/."""
    from keras_resnet.export import export_model

    return {
        (fmt, quantize): export_model(
            tiny_run.run_dir, fmt, quantize, images=tiny_run.heldout, calibration_images=tiny_run.calib
        )
        for fmt, quantize in EXPORTS
    }
