"""Recipes in use: their versions in the record, and the recipes folder a GUI or a PLC picks from.

A recipe's version is taken of its content (merged over the packaged default) and its camera
settings file: each distinct content of a recipe name is recorded once in `recipe_versions`,
numbered 1, 2, ... in the order first used, so an edited recipe file is a new version and the
same file used again is the same version.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from inspection.config import Config, Recipe, load_recipes, recipes_dir
from inspection.errors import ConfigError
from inspection.schema import Event, RecipeVersion
from inspection.store import Store, utcnow


def recipe_version(store: Store, recipe: Recipe) -> int:
    """The version number of `recipe`'s content, recorded (with an info event) on first use."""
    for _ in range(3):  # (another station adding a version of the same name at once: read it back)
        with store.session() as s:
            row = s.scalar(
                select(RecipeVersion).where(RecipeVersion.name == recipe.name, RecipeVersion.sha256 == recipe.sha256)
            )
            if row is not None:
                return row.version
            version = (
                s.scalar(select(func.max(RecipeVersion.version)).where(RecipeVersion.name == recipe.name)) or 0
            ) + 1
            s.add(
                RecipeVersion(
                    name=recipe.name,
                    version=version,
                    sha256=recipe.sha256,
                    content_json=recipe.content,
                    first_used_at=utcnow(),
                )
            )
            s.add(
                Event(
                    ts=utcnow(),
                    level="info",
                    kind="recipe",
                    message=f"Recipe {recipe.name} version {version} ({recipe.sha256[:12]}) first used.",
                )
            )
            try:
                s.commit()
                return version
            except IntegrityError:
                s.rollback()
    raise ConfigError(f"The version of recipe {recipe.name!r} could not be recorded.")


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
                f"Recipes {out[index].name} and {path.name} in {folder} both have index {index}; a PLC could not tell them apart."
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
