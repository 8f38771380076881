"""The package's layers, asserted from its imports (module level and inside functions alike).

From the bottom: config, runs, preprocessing, compat -> models, data -> train ->
export, tune -> cli. A module may import its own layer or any layer below it, never
one above: so the CLI can change without touching the library, and the library
never reaches up into the command line.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "keras_resnet"

LAYERS = {
    "keras_resnet": 0,
    "keras_resnet.config": 0,
    "keras_resnet.runs": 0,
    "keras_resnet.plots": 0,
    "keras_resnet.files": 0,
    "keras_resnet.preprocessing": 0,
    "keras_resnet.compat": 0,
    "keras_resnet.cpu_kernels": 0,
    "keras_resnet.textsafe": 0,
    "keras_resnet.recipes": 0,
    "keras_resnet.models": 1,
    "keras_resnet.data": 1,
    "keras_resnet.train": 2,
    "keras_resnet.export": 3,
    "keras_resnet.tune": 3,
    "keras_resnet.cli": 4,
}


def layer_of(module: str) -> int:
    """The layer of a dotted module name (its longest known prefix)."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise KeyError(module)


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(imported keras_resnet module, line) for every import in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.startswith("keras_resnet")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("keras_resnet"):
            found += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_layer_above_its_own(path):
    own = layer_of(module_name(path))
    upward = [(name, line) for name, line in imports_of(path) if layer_of(name) > own]
    assert not upward, f"{path.relative_to(PACKAGE.parent)} (layer {own}) imports upward: {upward}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "export").rglob("*.py")), ids=lambda p: p.name)
def test_export_does_not_reach_into_train(path):
    """Export stands beside training (shared/DESIGN.md): it serves trained models, not the trainer."""
    into_train = [(name, line) for name, line in imports_of(path) if name.startswith("keras_resnet.train")]
    assert not into_train, f"{path.relative_to(PACKAGE.parent)} imports keras_resnet.train: {into_train}"


def test_the_layer_map_covers_every_module_and_can_fail():
    for path in SOURCES:
        layer_of(module_name(path))  # KeyError for a module no layer claims
    assert layer_of("keras_resnet.cli.train") > layer_of("keras_resnet.train.trainer") > layer_of("keras_resnet.models.resnet")
    # the check itself: a bottom module importing the CLI is flagged
    assert layer_of("keras_resnet.cli.main") > layer_of(module_name(PACKAGE / "runs.py"))
