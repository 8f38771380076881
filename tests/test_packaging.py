"""What a wheel install contains: every subpackage, and the recipes in configs/."""

from pathlib import Path

import pytest

from keras_resnet.train.config import configs_dir

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]


def setuptools_table():
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def test_every_subpackage_is_listed_for_the_wheel():
    on_disk = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "keras_resnet").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    listed = set(setuptools_table()["packages"])
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - on_disk == {"keras_resnet.recipes"}


def test_recipes_ship_inside_the_package():
    table = setuptools_table()
    assert table["package-dir"] == {"keras_resnet.recipes": "configs"}
    assert table["package-data"] == {"keras_resnet.recipes": ["*.yaml"]}
    assert sorted((ROOT / "configs").glob("*.yaml")), "configs/ holds the recipes"


def test_configs_dir_prefers_the_installed_recipes(tmp_path):
    package = tmp_path / "site" / "keras_resnet"
    package.mkdir(parents=True)
    assert configs_dir(package) == tmp_path / "site" / "configs"  # source checkout layout
    (package / "recipes").mkdir()
    assert configs_dir(package) == package / "recipes"  # wheel layout
