"""Recipes: the YAML configs shipped in ``configs/`` (``keras_resnet/recipes/`` in a wheel).

Example:
    >>> find_recipe("cifar10_resnet56").name
    'cifar10_resnet56.yaml'
"""

from __future__ import annotations

from pathlib import Path


def configs_dir(package_root: Path) -> Path:
    """Where the recipes are: ``keras_resnet/recipes/`` in a wheel install, else ``configs/``.

    A wheel ships the repository's ``configs/`` as the package ``keras_resnet.recipes``
    (see pyproject.toml); a source checkout or editable install reads ``configs/`` beside
    the package.

    Args:
        package_root: The ``keras_resnet`` package directory.

    Returns:
        The recipe directory (which may not exist when neither is installed).
    """
    installed = package_root / "recipes"
    return installed if installed.is_dir() else package_root.parent / "configs"


CONFIGS_DIR = configs_dir(Path(__file__).resolve().parents[1])
DEFAULT_RECIPES = {"cifar10": "cifar10_resnet32"}


def find_recipe(name_or_path: str | Path) -> Path:
    """A config file from a path or a recipe name in ``configs/`` (``"cifar10_resnet56"``).

    Raises:
        FileNotFoundError: naming the path tried and the recipes available.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    recipe = CONFIGS_DIR / f"{path.name}.yaml" if path.suffix == "" else CONFIGS_DIR / path.name
    if len(path.parts) == 1 and recipe.is_file():
        return recipe
    available = sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml")) if CONFIGS_DIR.is_dir() else []
    raise FileNotFoundError(
        f"Config file not found: {name_or_path}. Expected a YAML path or a recipe name, one of: "
        f"{', '.join(available) or '(no configs/ directory)'}"
    )


def default_recipe(dataset: str | None) -> Path | None:
    """The recipe used when no ``--config`` is given: ``configs/cifar10_resnet32.yaml`` for cifar10.

    Returns:
        The recipe path, or None (built-in defaults) for other datasets or when the
        ``configs/`` directory is not installed.
    """
    name = DEFAULT_RECIPES.get(dataset or "")
    path = CONFIGS_DIR / f"{name}.yaml" if name else None
    return path if path is not None and path.is_file() else None
