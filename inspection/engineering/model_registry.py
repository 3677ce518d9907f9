"""Which model a recipe runs: the recipe's own package until an engineer promotes another one.

Promotions and rollbacks are rows of `model_promotions` (history, never edited): who, when, the
package, the model it replaced and the comparison it rested on. A promoted package is copied into
`models/` of the user data folder under a name that holds its hash (the record keeps the name, so
the data folder may move), so neither a later training nor a cleaned-up candidates folder can
change what the line runs; the recipe's own model is recorded as `@recipe` (whatever file the
recipe names). A promotion pushes, a rollback pops: rolling back twice after two promotions returns
to the recipe's own model. Every inspection row keeps the model version that judged it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select

from inspection.access import audit
from inspection.access.users import Permission, User, require
from inspection.errors import ConfigError, StoreError
from inspection.record.opening import open_record
from inspection.record.schema import Event, ModelPromotion, ModelVersion
from inspection.record.store import Store, utcnow
from inspection.runtime.verdict import thresholds_in_force
from inspection.settings.config import data_dir
from inspection.settings.recipe import Recipe
from models.package import model_info, read_package

log = logging.getLogger(__name__)


def models_dir() -> Path:
    """Promoted packages: `models/` in the user data folder."""
    return data_dir() / "models"


def candidates_dir() -> Path:
    """Trained candidates and their comparisons: `models/candidates/` in the user data folder."""
    return models_dir() / "candidates"


RECIPE_OWN = "@recipe"  # stands for "the recipe's own model file", whatever the recipe names at the time


@dataclasses.dataclass(frozen=True)
class Promotion:
    id: int
    at: dt.datetime  # naive UTC
    who: str
    recipe: str
    action: str  # promote or rollback
    model: str  # name vVersion (sha12)
    package: str  # a file name in models_dir(), or RECIPE_OWN
    previous: str | None
    comment: str

    def path(self, recipe: Recipe) -> Path:
        return package_path(self.package, recipe)


def package_path(name: str, recipe: Recipe) -> Path:
    """Where a recorded package is: the recipe's own model file, or a file in models_dir()."""
    return recipe.model if name == RECIPE_OWN else models_dir() / name


def _label(mv: ModelVersion) -> str:
    return f"{mv.name} v{mv.version} ({mv.sha256[:12]})"


def history(store: Store, recipe: str | None = None) -> list[Promotion]:
    """Promotions and rollbacks, newest first (of one recipe, or all)."""
    q = select(ModelPromotion, ModelVersion).join(ModelVersion, ModelVersion.id == ModelPromotion.model_version_id)
    if recipe is not None:
        q = q.where(ModelPromotion.recipe == recipe)
    with store.session() as s:
        rows = s.execute(q.order_by(ModelPromotion.id.desc())).all()
    return [
        Promotion(p.id, p.at, p.who, p.recipe, p.action, _label(mv), p.package_path, p.previous_path, p.comment)
        for p, mv in rows
    ]


def active(store: Store, recipe: str) -> Promotion | None:
    rows = history(store, recipe)
    return rows[0] if rows else None


def _stack(store: Store, recipe: str) -> list[str]:
    """The packages the recipe ran, oldest first, with promotions pushed and rollbacks popped: the
    last is the one it runs, the one before it what a rollback returns to."""
    stack = [RECIPE_OWN]
    for p in reversed(history(store, recipe)):
        if p.action == "promote":
            stack.append(p.package)
        elif len(stack) > 1:
            stack.pop()
    return stack


def can_roll_back(store: Store, recipe: str) -> bool:
    return len(_stack(store, recipe)) > 1


def model_for(recipe: Recipe, db: Path) -> Path:
    """The package `recipe` runs with the record at `db`: its latest promotion's, else the recipe's
    own. Read without the database's lock (the station may be opening it)."""
    if not Path(db).is_file():
        return recipe.model
    try:
        store = open_record(db, read_only=True)
    except StoreError:
        return recipe.model  # an old or unreadable record has no promotions; opening it will say what is wrong
    try:
        current = active(store, recipe.name)
    finally:
        store.close()
    if current is None:
        return recipe.model
    path = current.path(recipe)
    if not path.is_file():
        raise ConfigError(
            f"The model promoted for recipe {recipe.name} ({current.model}) is missing at {path}; "
            "restore it or roll back."
        )
    return path


def _register(store: Store, package: Path, recipe: Recipe | None = None) -> tuple[int, dict[str, Any], str]:
    """Read a package once: its model version id (recorded on first sight), metadata and sha256.
    With `recipe`, ConfigError/ModelError in one sentence if the recipe cannot run it."""
    meta, _state, sha = read_package(package)
    try:
        info = model_info(meta, sha)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"Model package {package} has invalid thresholds or classes ({exc}).") from None
    if recipe is not None:
        thresholds_in_force(recipe, info)
    return store.model_version(info), meta, sha


def promote(
    store: Store,
    recipe: Recipe,
    package: Path,
    *,
    user: User,
    comment: str = "",
    evaluation: dict[str, Any] | None = None,
) -> Promotion:
    """Make `package` the model `recipe` runs from its next start; the model it replaces stays
    available for `rollback`. A package that cannot be read, does not fit the recipe or already
    runs is refused (one sentence), as is a user who may not promote (PermissionDenied)."""
    user = require(store, user, Permission.PROMOTE)
    package = Path(package)
    version_id, meta, sha = _register(store, package, recipe)
    stack = _stack(store, recipe.name)
    current = package_path(stack[-1], recipe)
    prev_id, _, prev_sha = _register(store, current) if current.is_file() else (None, None, None)
    if prev_sha == sha:
        raise ConfigError(
            f"Model {meta['name']} v{meta['version']} ({sha[:12]}) already runs for recipe {recipe.name}."
        )
    name = f"{meta['name']}-v{meta['version']}-{sha[:12]}.lpkg"
    target = models_dir() / name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(package, target.with_suffix(".tmp"))
            target.with_suffix(".tmp").replace(target)
        except OSError as exc:
            raise StoreError(f"Cannot copy the model into {target.parent}: {exc.strerror}.") from None
    return _add(
        store,
        recipe.name,
        "promote",
        version_id,
        name,
        sha,
        prev_id,
        stack[-1],
        user.name,
        comment,
        evaluation,
        f"Model {meta['name']} v{meta['version']} ({sha[:12]}) promoted for recipe {recipe.name} by {user.name}.",
    )


def rollback(store: Store, recipe: Recipe, *, user: User, comment: str = "") -> Promotion:
    """Return `recipe` to the model it ran before the promotion of the one it runs now
    (PermissionDenied for a user who may not)."""
    user = require(store, user, Permission.PROMOTE)
    stack = _stack(store, recipe.name)
    if len(stack) < 2:
        raise ConfigError(f"Recipe {recipe.name} runs its own model; there is nothing to roll back to.")
    back, now = package_path(stack[-2], recipe), package_path(stack[-1], recipe)
    if not back.is_file():
        raise ConfigError(f"The model to roll back to is missing at {back}.")
    version_id, meta, sha = _register(store, back, recipe)
    now_id = _register(store, now)[0] if now.is_file() else None
    return _add(
        store,
        recipe.name,
        "rollback",
        version_id,
        stack[-2],
        sha,
        now_id,
        stack[-1],
        user.name,
        comment,
        None,
        f"Recipe {recipe.name} rolled back to model {meta['name']} v{meta['version']} ({sha[:12]}) by {user.name}.",
    )


def _add(
    store: Store,
    recipe: str,
    action: str,
    version_id: int,
    package: str,
    sha: str,
    prev_id: int | None,
    previous: str | None,
    who: str,
    comment: str,
    evaluation: dict[str, Any] | None,
    message: str,
) -> Promotion:
    with audit.session(store) as s:
        row = ModelPromotion(
            at=utcnow(),
            who=who,
            recipe=recipe,
            action=action,
            model_version_id=version_id,
            package_path=package,
            previous_model_version_id=prev_id,
            previous_path=previous,
            comment=comment,
            evaluation_json=json.dumps(evaluation, default=str) if evaluation else None,
        )
        s.add(row)
        s.add(Event(ts=utcnow(), level="info", kind="model", message=message + (f" {comment}" if comment else "")))
        audit.append(
            s,
            who=who,
            action=action,
            target=recipe,
            detail={"package": package, "sha256": sha, "previous_package": previous, "comment": comment},
        )
    log.info(message)
    return history(store, recipe)[0]
