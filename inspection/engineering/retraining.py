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
from typing import Any

from inspection.engineering.dataset_export import export_dataset
from inspection.engineering.model_registry import candidates_dir, model_for
from inspection.errors import ConfigError
from inspection.record.store import open_record
from inspection.settings.recipe import Recipe

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
        return json.loads(comparison_path(package).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


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
    from models.evaluation import compare
    from models.package import build_inspector, read_package, resolve_device, save_package
    from models.training.retrain import RetrainOptions, held_back_split, next_version, retrain

    device = resolve_device(device)
    current = model_for(recipe, db)
    meta, state, sha = read_package(current)
    if base_dataset is None:
        trained_on = Path(str(meta.get("training", {}).get("dataset", "")))
        base_dataset = trained_on if str(trained_on) and (trained_on / "manifest.csv").is_file() else None
    base = load_dataset(base_dataset) if base_dataset is not None else None
    trained = set(meta.get("training", {}).get("labels", {}).get("groups", [])) | (
        {s.group for s in base.samples} if base else set()
    )
    if out is None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        out = candidates_dir() / f"{meta['name']}-v{next_version(str(meta['version']))}-{stamp}.lpkg"
    partial = out.with_name(
        out.name + ".partial"
    )  # renamed only when the comparison is written too: a cancel leaves no candidate
    store = open_record(db)
    try:
        with tempfile.TemporaryDirectory(prefix="lepton-labels-") as tmp:
            try:
                exported = export_dataset(store, Path(tmp) / "labels")
            finally:
                store.close()
            if exported.parts == 0:
                raise ConfigError(
                    f"The database {db} has no relabelled part with its image: review and relabel parts first."
                )
            labels = load_dataset(Path(tmp) / "labels")
            train_idx, held_idx = held_back_split(labels.samples, trained=trained)
            new_meta, new_state = retrain(
                meta,
                state,
                labels,
                train_idx,
                base=base,
                options=RetrainOptions(kind=kind, epochs=epochs, time_limit_s=time_limit_s),
                device=device,
                progress=progress,
            )
            new_meta["training"]["record"] = str(db)
            new_meta["training"]["held_back_parts"] = sorted({labels.samples[i].group for i in held_idx})
            out.parent.mkdir(parents=True, exist_ok=True)
            cand_sha = save_package(partial, new_meta, new_state)
            held = [labels.samples[i] for i in held_idx]
            result = compare(
                {
                    "current": build_inspector(
                        meta, state, sha256=sha, device=device
                    ),  # the packages as read and written
                    "candidate": build_inspector(new_meta, new_state, sha256=cand_sha, device=device),
                },
                held,
                progress=(lambda i, n: progress("comparison", i, n)) if progress else None,
            )
        summary = {
            "recipe": recipe.name,
            "current_package": str(current),
            "current_sha256": sha,
            "candidate_package": str(out),
            "candidate_sha256": cand_sha,
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


def list_candidates(recipe: str | None = None, folder: Path | None = None) -> list[tuple[Path, dict[str, Any] | None]]:
    """Candidate packages (of one recipe, or all), newest first, each with its comparison (None
    if it has none: then its recipe is unknown and it is listed for every recipe)."""
    folder = folder or candidates_dir()
    files = sorted(folder.glob("*.lpkg"), key=lambda p: p.stat().st_mtime, reverse=True) if folder.is_dir() else []
    found = [(p, read_comparison(p)) for p in files]
    return [(p, c) for p, c in found if recipe is None or c is None or c.get("recipe") == recipe]
