"""The config layer is the bottom of the package: no TensorFlow, no Keras, nothing above it."""

import ast
import subprocess
import sys
from pathlib import Path

import keras_resnet.config

CONFIG_DIR = Path(keras_resnet.config.__file__).parent
ALLOWED = {"keras_resnet.config", "keras_resnet.runs"}


def imported_modules(path):
    """Every module a file imports, at any depth (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_config_imports_nothing_above_it():
    files = sorted(CONFIG_DIR.glob("*.py"))
    assert {f.stem for f in files} >= {"__init__", "schema", "data", "loader", "recipes", "choices"}
    for path in files:
        ours = {m for m in imported_modules(path) if m.split(".")[0] in ("keras_resnet", "keras", "tensorflow")}
        upward = {m for m in ours if not any(m == a or m.startswith(a + ".") for a in ALLOWED)}
        assert not upward, f"{path.name} imports {sorted(upward)}"


def test_loading_a_config_imports_no_tensorflow():
    code = ("import sys; from keras_resnet.config import load_config, find_recipe; "
            "load_config(find_recipe('cifar10_resnet20'), set_values=['training.epochs=1']); "
            "bad = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules); assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
