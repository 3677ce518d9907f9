"""Relabelling: a person's judgement of an inspected part (OK or NG, its defect classes, optionally
a mask), kept as a new row beside the model's verdict, which is never touched. The one way every
entry point (the review window, the command line, code) records one: the permission check and the
audit entry included."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inspection.access import audit
from inspection.access.users import Permission, User, require
from inspection.errors import StoreError
from inspection.record.images import write_png
from inspection.record.schema import Inspection, Relabel
from inspection.record.store import Store, utcnow


def relabel(
    store: Store,
    part_id: str,
    verdict: str,
    *,
    user: User,
    classes: tuple[str, ...] = (),
    mask: np.ndarray | None = None,
    comment: str = "",
) -> int:
    """Record a user's judgement of a part (OK or NG, classes, optionally a mask) as a new row,
    with its audit entry in the same transaction; the model's verdict is never touched.
    PermissionDenied unless the user may relabel. Returns the relabel's id."""
    user = require(store, user, Permission.RELABEL)
    if verdict not in ("OK", "NG"):
        raise StoreError(f"A relabel's verdict is OK or NG, not {verdict!r}: a person decides.")
    if verdict == "OK" and classes:
        raise StoreError("A part relabelled OK has no defect classes.")
    with audit.session(store) as s:
        part = s.scalar(select(Inspection).where(Inspection.part_id == part_id))
        if part is None:
            raise StoreError(f"The database {store.name} has no part {part_id}.")
        latest = s.scalar(select(Relabel).where(Relabel.inspection_id == part.id).order_by(Relabel.id.desc()).limit(1))
        mask_rel = _save_mask(store, s, part, mask) if mask is not None else None
        row = Relabel(
            inspection_id=part.id,
            at=utcnow(),
            who=user.name,
            previous_verdict=latest.verdict if latest else part.verdict,
            verdict=verdict,
            classes_json=json.dumps(list(classes)),
            mask_path=mask_rel,
            comment=comment,
        )
        s.add(row)
        s.flush()
        detail = {
            "relabel_id": row.id,
            "previous_verdict": row.previous_verdict,
            "verdict": verdict,
            "classes": list(classes),
            "mask_path": mask_rel,
            "comment": comment,
        }
        audit.append(s, who=user.name, action="relabel", target=part_id, detail=detail)
        return row.id


def _save_mask(store: Store, s: Session, part: Inspection, mask: np.ndarray) -> str:
    """Write a relabel's mask beside the record's images (`relabels/`, numbered per part); its path
    relative to the database's folder."""
    base, images = store.image_folders()
    folder = images / "relabels"
    folder.mkdir(parents=True, exist_ok=True)
    n = s.scalar(select(func.count()).select_from(Relabel).where(Relabel.inspection_id == part.id)) or 0
    mask_file: Path = folder / f"{part.part_id}_relabel{n + 1}_mask.png"
    write_png(mask_file, mask.astype(np.uint8) * 255 if mask.dtype == bool else mask.astype(np.uint8))
    return str(mask_file.relative_to(base))
