"""`kresnet --help` answers without TensorFlow: the CLI imports it only when a command runs."""

import os
import subprocess
import sys
import textwrap


def run_python(code):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_importing_the_cli_and_asking_for_help_import_no_tensorflow():
    result = run_python("""
        import sys
        import keras_resnet.cli
        from keras_resnet.cli import main

        def loaded():
            return sorted(m for m in ("tensorflow", "keras") if m in sys.modules)

        assert not loaded(), ("import", loaded())
        for args in (["--help"], ["train", "--help"], ["export", "--help"], ["tune", "--help"], ["models", "--help"]):
            try:
                main(args)
            except SystemExit as stop:
                assert stop.code == 0, (args, stop.code)
            assert not loaded(), (args, loaded())
        print("no tensorflow")
        """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("no tensorflow")


def test_a_command_imports_tensorflow_without_its_startup_notices():
    result = run_python("""
        import sys
        from keras_resnet.cli import main
        try:
            main(["models"])
        except SystemExit as stop:
            assert stop.code == 0, stop.code
        assert "tensorflow" in sys.modules
        """)
    assert result.returncode == 0, result.stderr
    assert "resnet50" in result.stdout
    notices = ("absl::InitializeLog", "oneDNN", "cpu_feature_guard", "Could not find cuda drivers", "cuInit: UNKNOWN")
    assert not [notice for notice in notices if notice in result.stderr], result.stderr
    if not os.path.exists("/dev/nvidia0"):  # on a CPU-only machine nothing at all is left
        assert result.stderr == "", result.stderr
