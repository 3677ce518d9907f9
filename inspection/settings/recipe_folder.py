"""The recipes folder a window or a PLC picks recipes from: the valid recipe files by name and by PLC index."""

from __future__ import annotations

import logging
from pathlib import Path

from inspection.errors import ConfigError
from inspection.settings.config import Config, data_dir
from inspection.settings.recipe import Recipe, load_recipe

log = logging.getLogger(__name__)


def load_recipes(folder: Path) -> list[tuple[Recipe, Path]]:
    """(recipe, path) of each valid recipe file in `folder`, by name; invalid ones are logged and left out."""
    out = []
    for path in sorted(Path(folder).glob("*.toml")) if Path(folder).is_dir() else []:
        try:
            out.append((load_recipe(path), path))
        except ConfigError as exc:
            log.warning("recipe %s left out: %s", path, exc)
    return sorted(out, key=lambda rp: (rp[0].name, rp[1]))


def find_recipes(folder: Path) -> list[tuple[str, Path]]:
    """(name, path) of each valid recipe file in `folder`, by name (see load_recipes)."""
    return [(recipe.name, path) for recipe, path in load_recipes(folder)]


def recipes_dir() -> Path:
    """Where the station's recipes live: `recipes/` in the user data folder."""
    return data_dir() / "recipes"


def recipes_folder(config: Config) -> Path:
    """The station's recipes folder: the config's recipes.folder, else recipes/ in the user data folder."""
    return config.recipes_folder or recipes_dir()


def recipe_indexes(folder: Path) -> dict[int, Path]:
    """PLC index -> recipe file of the valid recipes in `folder` that have an index (1 or more).
    ConfigError (one sentence) when two recipes claim the same index."""
    out: dict[int, Path] = {}
    for recipe, path in load_recipes(folder):  # (each file read once)
        index = recipe.index
        if not index:
            continue
        if index in out:
            raise ConfigError(
                f"Recipes {out[index].name} and {path.name} in {folder} both have index {index}; "
                "a PLC could not tell them apart."
            )
        out[index] = path
    return out


def recipe_for_index(folder: Path, index: int) -> Path:
    """The recipe file with PLC index `index`; ConfigError (one sentence) when there is none."""
    found = recipe_indexes(folder)
    if index not in found:
        known = ", ".join(str(k) for k in sorted(found)) or "none"
        raise ConfigError(f"No recipe in {folder} has index {index} (indexes there: {known}).")
    return found[index]
