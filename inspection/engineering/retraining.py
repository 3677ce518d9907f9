"""From the record to a candidate model: export the labelled parts, keep a stable share of them
back, train a candidate from the current model's data plus the rest, and evaluate the candidate
and the current model on the held-back parts, side by side. The record is only read (read-only,
beside a running station). `lepton-inspect train --from-db` runs this; the GUI runs that command
as a child process at the lowest priority with one thread, so that the line keeps its cores and a
cancel is immediate.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspection.engineering.dataset_export import ExportSummary, export_dataset
from inspection.engineering.model_registry import candidates_dir, model_for
from inspection.errors import ConfigError
from inspection.record.opening import open_record
from inspection.record.store import Store
from inspection.settings.recipe import Recipe

if TYPE_CHECKING:  # (torch and the training code load only when a candidate is trained)
    import torch

    from models.datasets import Dataset, Sample
    from models.training.retrain import RetrainOptions

Progress = Callable[[str, int, int], None]


@dataclasses.dataclass(frozen=True)
class Candidate:
    package: Path
    comparison: Path  # JSON beside the package
    summary: dict[str, Any]


def comparison_path(package: Path) -> Path:
    return package.with_suffix(".compare.json")


def read_comparison(package: Path) -> dict[str, Any] | None:
    """The comparison written beside a candidate; None when there is none or it is unreadable."""
    try:
        comparison = json.loads(comparison_path(package).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return comparison if isinstance(comparison, dict) else None


def train_candidate(
    db: Path,
    recipe: Recipe,
    *,
    out: Path | None = None,
    base_dataset: Path | None = None,
    kind: str | None = None,
    epochs: int | None = None,
    time_limit_s: float | None = None,
    device: str = "auto",
    progress: Progress | None = None,
) -> Candidate:
    """Train and compare a candidate for `recipe` from the labels in the record at `db`."""
    from models.datasets import load_dataset
    from models.package import read_package, resolve_device
    from models.training.retrain import RetrainOptions, held_back_split

    device = resolve_device(device)
    current_path = model_for(recipe, db)
    current = _Package(*read_package(current_path))
    if base_dataset is None:
        base_dataset = _trained_on(current.meta)
    base = load_dataset(base_dataset) if base_dataset is not None else None
    trained = set(current.meta.get("training", {}).get("labels", {}).get("groups", [])) | (
        {s.group for s in base.samples} if base else set()
    )
    out = out if out is not None else _candidate_path(current.meta)
    partial = out.with_name(out.name + ".partial")  # renamed only with its comparison: a cancel leaves no candidate
    store = open_record(db, read_only=True)
    try:
        with tempfile.TemporaryDirectory(prefix="lepton-labels-") as tmp:
            labels, exported = _export_labels(store, db, Path(tmp) / "labels")
            train_idx, held_idx = held_back_split(labels.samples, trained=trained)
            options = RetrainOptions(kind=kind, epochs=epochs, time_limit_s=time_limit_s)
            candidate = _retrain(current, labels, train_idx, held_idx, base, options, device, progress, db, partial)
            result = _compare(current, candidate, [labels.samples[i] for i in held_idx], device, progress)
        summary = {
            "recipe": recipe.name,
            "current_package": str(current_path),
            "current_sha256": current.sha256,
            "candidate_package": str(out),
            "candidate_sha256": candidate.sha256,
            "labelled_parts": exported.parts,
            "trained_on_labels": len(train_idx),
            "held_back": len(held_idx),
            "base_dataset": str(base_dataset) if base_dataset else None,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            **result,
        }
        path = comparison_path(out)
        path.write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
        partial.replace(out)
    except OSError as exc:
        raise ConfigError(
            f"The candidate could not be written ({exc.strerror or exc}: {exc.filename or out})."
        ) from None
    finally:
        partial.unlink(missing_ok=True)
    return Candidate(out, path, summary)


@dataclasses.dataclass(frozen=True)
class _Package:
    """A model package as read or written: its metadata, weights and sha256."""

    meta: dict[str, Any]
    state: dict[str, torch.Tensor]
    sha256: str


def _trained_on(meta: dict[str, Any]) -> Path | None:
    """The dataset the current model was trained on, where it is still on this machine."""
    trained_on = Path(str(meta.get("training", {}).get("dataset", "")))
    return trained_on if str(trained_on) and (trained_on / "manifest.csv").is_file() else None


def _candidate_path(meta: dict[str, Any]) -> Path:
    """Where a candidate goes by default: the candidates folder, named for the next version and the time."""
    from models.training.retrain import next_version

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return candidates_dir() / f"{meta['name']}-v{next_version(str(meta['version']))}-{stamp}.lpkg"


def _export_labels(store: Store, db: Path, folder: Path) -> tuple[Dataset, ExportSummary]:
    """The record's labelled parts exported into `folder` and read back as a dataset; closes `store`."""
    from models.datasets import load_dataset

    try:
        exported = export_dataset(store, folder)
    finally:
        store.close()
    if exported.parts == 0:
        raise ConfigError(f"The database {db} has no relabelled part with its image: review and relabel parts first.")
    return load_dataset(folder), exported


def _retrain(
    current: _Package,
    labels: Dataset,
    train_idx: list[int],
    held_idx: list[int],
    base: Dataset | None,
    options: RetrainOptions,
    device: str,
    progress: Progress | None,
    db: Path,
    partial: Path,
) -> _Package:
    """The candidate trained from `current` on the labels' training side (and `base`), noted with the
    record and the parts held back, and written to `partial`."""
    from models.package import save_package
    from models.training.retrain import retrain

    meta, state = retrain(
        current.meta,
        current.state,
        labels,
        train_idx,
        base=base,
        options=options,
        device=device,
        progress=progress,
    )
    meta["training"]["record"] = str(db)
    meta["training"]["held_back_parts"] = sorted({labels.samples[i].group for i in held_idx})
    partial.parent.mkdir(parents=True, exist_ok=True)
    return _Package(meta, state, save_package(partial, meta, state))


def _compare(
    current: _Package, candidate: _Package, held: list[Sample], device: str, progress: Progress | None
) -> dict[str, Any]:
    """The current model and the candidate evaluated side by side on the held-back parts."""
    from models.evaluation import compare
    from models.package import build_inspector

    inspectors = {  # the packages as read and written
        "current": build_inspector(current.meta, current.state, sha256=current.sha256, device=device),
        "candidate": build_inspector(candidate.meta, candidate.state, sha256=candidate.sha256, device=device),
    }
    return compare(inspectors, held, progress=(lambda i, n: progress("comparison", i, n)) if progress else None)


def list_candidates(recipe: str | None = None, folder: Path | None = None) -> list[tuple[Path, dict[str, Any] | None]]:
    """Candidate packages (of one recipe, or all), newest first, each with its comparison (None
    if it has none: then its recipe is unknown and it is listed for every recipe)."""
    folder = folder or candidates_dir()
    files = sorted(folder.glob("*.lpkg"), key=lambda p: p.stat().st_mtime, reverse=True) if folder.is_dir() else []
    found = [(p, read_comparison(p)) for p in files]
    return [(p, c) for p, c in found if recipe is None or c is None or c.get("recipe") == recipe]
