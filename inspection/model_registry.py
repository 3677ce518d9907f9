"""Which model a recipe runs: the recipe's own package until an engineer promotes another one.

Promotions and rollbacks are rows of `model_promotions` (history, never edited): who, when, the
package, the model it replaced and the comparison it rested on. A promoted package is copied into
`models/` of the user data folder under a name that holds its hash, so neither a later training
nor a cleaned-up candidates folder can change what the line runs. Every inspection row keeps the
model version that judged it (`inspections.model_version_id`).
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

from inspection.config import Recipe, data_dir
from inspection.errors import ConfigError, StoreError
from inspection.schema import ModelPromotion, ModelVersion
from inspection.store import Store, open_record, utcnow
from models.package import model_info, read_package

log = logging.getLogger(__name__)


def models_dir() -> Path:
    """Promoted packages: `models/` in the user data folder."""
    return data_dir() / "models"


def candidates_dir() -> Path:
    """Trained candidates and their comparisons: `models/candidates/` in the user data folder."""
    return models_dir() / "candidates"


@dataclasses.dataclass(frozen=True)
class Promotion:
    id: int
    at: dt.datetime  # naive UTC
    who: str
    recipe: str
    action: str  # promote or rollback
    model: str  # name vVersion (sha12)
    package: Path
    previous: Path | None
    comment: str


def _label(mv: ModelVersion) -> str:
    return f"{mv.name} v{mv.version} ({mv.sha256[:12]})"


def history(store: Store, recipe: str | None = None) -> list[Promotion]:
    """Promotions and rollbacks, newest first (of one recipe, or all)."""
    q = select(ModelPromotion, ModelVersion).join(ModelVersion, ModelVersion.id == ModelPromotion.model_version_id)
    if recipe is not None:
        q = q.where(ModelPromotion.recipe == recipe)
    with store.session() as s:
        rows = s.execute(q.order_by(ModelPromotion.id.desc())).all()
    return [Promotion(p.id, p.at, p.who, p.recipe, p.action, _label(mv), Path(p.package_path), Path(p.previous_path) if p.previous_path else None,
                      p.comment) for p, mv in rows]


def active(store: Store, recipe: str) -> Promotion | None:
    rows = history(store, recipe)
    return rows[0] if rows else None


def model_for(recipe: Recipe, db: Path) -> Path:
    """The package `recipe` runs with the record at `db`: its latest promotion's, else the recipe's
    own. Read without the database's lock (the station may be opening it)."""
    if not Path(db).is_file():
        return recipe.model
    try:
        store = open_record(db)
    except StoreError:
        return recipe.model  # an old or unreadable record has no promotions; opening it will say what is wrong
    try:
        current = active(store, recipe.name)
    finally:
        store.close()
    if current is None:
        return recipe.model
    if not current.package.is_file():
        raise ConfigError(f"The model promoted for recipe {recipe.name} ({current.model}) is missing at {current.package}; "
                          "restore it or roll back.")
    return current.package


def _register(store: Store, package: Path) -> tuple[int, dict[str, Any], str]:
    meta, _state, sha = read_package(package)
    return store.model_version(model_info(meta, sha)), meta, sha


def promote(store: Store, recipe: Recipe, package: Path, *, who: str, comment: str = "", evaluation: dict[str, Any] | None = None) -> Promotion:
    """Make `package` the model `recipe` runs from its next start; the model it replaces stays
    available for `rollback`. A package that cannot be read is refused (ModelError)."""
    if not who.strip():
        raise StoreError("A promotion needs the name of who made it.")
    version_id, meta, sha = _register(store, Path(package))
    target = models_dir() / f"{meta['name']}-v{meta['version']}-{sha[:12]}.lpkg"
    if Path(package).resolve() != target.resolve():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(package, target.with_suffix(".tmp"))
            target.with_suffix(".tmp").replace(target)
        except OSError as exc:
            raise StoreError(f"Cannot copy the model into {target.parent}: {exc.strerror}.") from None
    current = active(store, recipe.name)
    previous = current.package if current is not None else recipe.model
    prev_id, _, _ = _register(store, previous) if previous.is_file() else (None, None, None)
    return _add(store, recipe.name, "promote", version_id, target, prev_id, previous, who, comment, evaluation,
                f"Model {meta['name']} v{meta['version']} ({sha[:12]}) promoted for recipe {recipe.name} by {who.strip()}.")


def rollback(store: Store, recipe: Recipe, *, who: str, comment: str = "") -> Promotion:
    """Return `recipe` to the model it ran before its latest promotion (or rollback)."""
    if not who.strip():
        raise StoreError("A rollback needs the name of who made it.")
    current = active(store, recipe.name)
    if current is None or current.previous is None:
        raise ConfigError(f"Recipe {recipe.name} runs its own model; there is nothing to roll back to.")
    if not current.previous.is_file():
        raise ConfigError(f"The model to roll back to is missing at {current.previous}.")
    version_id, meta, sha = _register(store, current.previous)
    cur_id, _, _ = _register(store, current.package) if current.package.is_file() else (None, None, None)
    return _add(store, recipe.name, "rollback", version_id, current.previous, cur_id, current.package, who, comment, None,
                f"Recipe {recipe.name} rolled back to model {meta['name']} v{meta['version']} ({sha[:12]}) by {who.strip()}.")


def _add(store: Store, recipe: str, action: str, version_id: int, package: Path, prev_id: int | None, previous: Path | None, who: str,
         comment: str, evaluation: dict[str, Any] | None, message: str) -> Promotion:
    from inspection.schema import Event

    with store.session() as s:
        row = ModelPromotion(at=utcnow(), who=who.strip(), recipe=recipe, action=action, model_version_id=version_id,
                             package_path=str(Path(package).resolve()), previous_model_version_id=prev_id,
                             previous_path=str(Path(previous).resolve()) if previous else None, comment=comment,
                             evaluation_json=json.dumps(evaluation, default=str) if evaluation else None)
        s.add(row)
        s.add(Event(ts=utcnow(), level="info", kind="model", message=message + (f" {comment}" if comment else "")))
        s.commit()
    log.info(message)
    return history(store, recipe)[0]
