"""Session fixtures for the export tests: a tiny trained run and one export of each kind."""

import pytest
from tiny_run import EXPORTS, tiny_run_fixture


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """See `tiny_run.build_tiny_run`."""
    return tiny_run_fixture(tmp_path_factory)


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
