"""Recipes in use: their versions in the record, and the recipes folder a GUI or a PLC picks from.

A recipe's version is taken of its content (merged over the packaged default) and its camera
settings file: each distinct content of a recipe name is recorded once in `recipe_versions`,
numbered 1, 2, ... in the order first used, so an edited recipe file is a new version and the
same file used again is the same version.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from inspection.errors import ConfigError
from inspection.record.schema import Event, RecipeVersion
from inspection.record.store import Store, utcnow
from inspection.settings.recipe import Recipe


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
