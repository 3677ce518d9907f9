"""From labels to a dataset: the parts engineers labelled (each part's latest relabel), written in
the project's dataset format (manifest.csv + images + masks, one group per physical part) and in
the MVTec AD layout (train/good, test/<class>, ground_truth/<class>), both readable by
`models.datasets.load_dataset`. Only the record is read (it may be open read-only beside a station)."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Select, func, select

from inspection.errors import ConfigError
from inspection.record.schema import Inspection, Relabel
from inspection.record.store import Store

MANIFEST_COLUMNS = (
    "image",
    "label",
    "cls",
    "mask",
    "group",
    "model_verdict",
    "labelled_by",
    "labelled_at_utc",
    "comment",
)


@dataclasses.dataclass(frozen=True)
class ExportSummary:
    parts: int  # written
    good: int
    defect: int
    without_image: int  # labelled, but the part's image was not kept: left out
    classes: tuple[str, ...]


def export_dataset(store: Store, out: Path, since: dt.datetime | None = None) -> ExportSummary:
    """Write the labelled parts (inspected at or after `since`, naive UTC) into `out`: the project's
    format at its top, the MVTec AD layout under `out/mvtec`. `out` must be new or empty."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} exists and is not an empty folder; give a new folder for the dataset.")
    with store.session() as s:
        rows = s.execute(_labelled_parts(since)).all()
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    manifest: list[dict[str, str]] = []
    missing, classes = 0, set()
    for row in rows:
        entry = _export_part(store, out, row)
        if entry is None:
            missing += 1
            continue
        manifest.append(entry)
        if entry["label"] != "good":
            classes.add(entry["cls"])
    with (out / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        w.writeheader()
        w.writerows(manifest)
    good_n = sum(r["label"] == "good" for r in manifest)
    return ExportSummary(len(manifest), good_n, len(manifest) - good_n, missing, tuple(sorted(classes)))


def _labelled_parts(
    since: dt.datetime | None,
) -> Select[str, str, str | None, str, str, str | None, str, dt.datetime, str]:
    """Each labelled part (inspected at or after `since`) with its latest relabel, oldest first."""
    latest = select(func.max(Relabel.id)).group_by(Relabel.inspection_id)
    q = (
        select(
            Inspection.part_id,
            Inspection.verdict,
            Inspection.image_path,
            Relabel.verdict,
            Relabel.classes_json,
            Relabel.mask_path,
            Relabel.who,
            Relabel.at,
            Relabel.comment,
        )
        .join(Relabel, Relabel.inspection_id == Inspection.id)
        .where(Relabel.id.in_(latest))
        .order_by(Inspection.id)
    )
    return q if since is None else q.where(Inspection.ts >= since)


def _export_part(store: Store, out: Path, row: Sequence[Any]) -> dict[str, str] | None:
    """Copy one labelled part (its image, and its mask if a defect has one) into both layouts;
    returns its manifest row, or None when its image was not kept."""
    part_id, model_verdict, image_rel, verdict, classes_json, mask_rel, who, at, comment = row
    src = store.image_file(image_rel)
    if src is None or not src.is_file():
        return None
    good = verdict == "OK"
    cls = "good" if good else (json.loads(classes_json) or ["defect"])[0]
    image = Path("images") / f"{part_id}{src.suffix}"
    shutil.copy2(src, out / image)
    mask = None
    mask_src = store.image_file(mask_rel)
    if not good and mask_src is not None and mask_src.is_file():
        mask = Path("masks") / f"{part_id}_mask.png"
        shutil.copy2(mask_src, out / mask)
    _add_to_mvtec(out, part_id, good, cls, src, mask)
    return {
        "image": str(image),
        "label": "good" if good else "defect",
        "cls": cls,
        "mask": str(mask) if mask else "",
        "group": part_id,
        "model_verdict": model_verdict,
        "labelled_by": who,
        "labelled_at_utc": at.replace(tzinfo=dt.UTC).isoformat(),
        "comment": comment,
    }


def _add_to_mvtec(out: Path, part_id: str, good: bool, cls: str, image: Path, mask: Path | None) -> None:
    """MVTec AD under `out/mvtec`: good parts train, defects test under their class with their
    ground truth (`mask`, as copied into `out`)."""
    mvtec = out / "mvtec"
    folder = mvtec / "train" / "good" if good else mvtec / "test" / cls
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(image, folder / f"{part_id}.png")
    if mask is not None:
        (mvtec / "ground_truth" / cls).mkdir(parents=True, exist_ok=True)
        shutil.copy2(out / mask, mvtec / "ground_truth" / cls / f"{part_id}_mask.png")
