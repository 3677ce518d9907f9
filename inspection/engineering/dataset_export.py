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
from pathlib import Path

from sqlalchemy import func, select

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
    if since is not None:
        q = q.where(Inspection.ts >= since)
    with store.session() as s:
        rows = s.execute(q).all()
    base = store.path.parent
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    mvtec = out / "mvtec"
    manifest, missing, classes = [], 0, set()
    for part_id, model_verdict, image_rel, verdict, classes_json, mask_rel, who, at, comment in rows:
        src = base / image_rel if image_rel else None
        if src is None or not src.is_file():
            missing += 1
            continue
        good = verdict == "OK"
        cls = "good" if good else (json.loads(classes_json) or ["defect"])[0]
        image = Path("images") / f"{part_id}{src.suffix}"
        shutil.copy2(src, out / image)
        mask = None
        if not good and mask_rel and (base / mask_rel).is_file():
            mask = Path("masks") / f"{part_id}_mask.png"
            shutil.copy2(base / mask_rel, out / mask)
        manifest.append(
            {
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
        )
        # MVTec AD: good parts train, defects test under their class with their ground truth.
        folder = mvtec / "train" / "good" if good else mvtec / "test" / cls
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, folder / f"{part_id}.png")
        if mask is not None:
            (mvtec / "ground_truth" / cls).mkdir(parents=True, exist_ok=True)
            shutil.copy2(out / mask, mvtec / "ground_truth" / cls / f"{part_id}_mask.png")
        if not good:
            classes.add(cls)
    with (out / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        w.writeheader()
        w.writerows(manifest)
    good_n = sum(r["label"] == "good" for r in manifest)
    return ExportSummary(len(manifest), good_n, len(manifest) - good_n, missing, tuple(sorted(classes)))
