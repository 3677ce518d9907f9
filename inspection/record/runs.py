"""A run's start: its row and events, added in the caller's transaction, and what it changed since
the runs before it, said back to the caller (who keeps it in the audit trail: inspection.access.runs).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from inspection.record.schema import Event, ModelVersion, Run
from inspection.record.store import utcnow


@dataclasses.dataclass(frozen=True)
class RunChange:
    """Something a new run changed since the last one: `action` is recipe_changed, model_changed
    or thresholds_changed; `detail` says from what to what (JSON)."""

    action: str
    target: str  # the recipe
    detail: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class NewRun:
    id: int
    changes: tuple[RunChange, ...]  # in the order a reader takes them: recipe, model, thresholds


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """What a new run is: where it runs, with which recipe and model, and the thresholds in force."""

    line: str
    station: str
    camera_spec: str
    recipe: str
    model_version_id: int
    software_version: str
    ok_below: float | None = None
    ng_at: float | None = None
    recipe_version: int | None = None


def add_run(s: Session, spec: RunSpec) -> NewRun:
    """A new run in `s`'s transaction (flushed, not committed). What differs from the last run is
    logged as an event and said back as a change: a recipe changed (a changeover), and for the same
    recipe a model changed (a promotion, a rollback or `--model`) or, with the same model,
    thresholds changed (the recipe edited outside the program, or through `recipe_edit`)."""
    last = s.scalar(select(Run).order_by(Run.id.desc()).limit(1))
    same = s.scalar(select(Run).where(Run.recipe == spec.recipe).order_by(Run.id.desc()).limit(1))
    run = Run(started_at=utcnow(), **dataclasses.asdict(spec))
    s.add(run)
    s.flush()
    changes: list[RunChange] = []
    if last is not None and last.recipe != spec.recipe:
        detail = {"run_id": run.id, "old": last.recipe, "new": spec.recipe}
        changes.append(RunChange("recipe_changed", spec.recipe, detail))
    if same is not None and same.model_version_id != spec.model_version_id:
        changes.append(_model_changed(s, run, same))
    if same is not None and same.ng_at is not None and (same.ok_below, same.ng_at) != (spec.ok_below, spec.ng_at):
        change = _thresholds_changed(s, run, same)
        if same.model_version_id == spec.model_version_id:  # (a new model brings its own: said above)
            changes.append(change)
    message = f"Run {run.id} started on {spec.camera_spec} with recipe {spec.recipe}."
    s.add(Event(ts=utcnow(), run_id=run.id, level="info", kind="run", message=message))
    return NewRun(run.id, tuple(changes))


def _model_changed(s: Session, run: Run, same: Run) -> RunChange:
    """The event and the change for a run whose model differs from its recipe's last run's."""
    old, new = _model(s, same.model_version_id), _model(s, run.model_version_id)
    message = (
        f"Model changed from {old.name} v{old.version} ({old.sha256[:12]}) "
        f"to {new.name} v{new.version} ({new.sha256[:12]})."
    )
    s.add(Event(ts=utcnow(), run_id=run.id, level="info", kind="model", message=message))
    detail = {
        "run_id": run.id,
        "old": f"{old.name} v{old.version} {old.sha256}",
        "new": f"{new.name} v{new.version} {new.sha256}",
    }
    return RunChange("model_changed", run.recipe, detail)


def _thresholds_changed(s: Session, run: Run, same: Run) -> RunChange:
    """The event and the change for a run whose thresholds differ from its recipe's last run's."""
    message = (
        f"Thresholds changed from OK below {same.ok_below:.4g} / NG at {same.ng_at:.4g} "
        f"to OK below {run.ok_below:.4g} / NG at {run.ng_at:.4g} (recipe {run.recipe})."
    )
    s.add(Event(ts=utcnow(), run_id=run.id, level="info", kind="thresholds", message=message))
    detail = {
        "run_id": run.id,
        "old": {"ok_below": same.ok_below, "ng_at": same.ng_at},
        "new": {"ok_below": run.ok_below, "ng_at": run.ng_at},
    }
    return RunChange("thresholds_changed", run.recipe, detail)


def _model(s: Session, model_version_id: int) -> ModelVersion:
    row = s.get(ModelVersion, model_version_id)
    if row is None:  # (a foreign key: only a broken record gets here)
        raise LookupError(f"The record has no model version {model_version_id}.")
    return row
