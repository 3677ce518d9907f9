"""After a crash or a kill: runs left without an end are ended, and their images reconciled with
their rows, when the record is next opened for writing (`open_record`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from inspection.record.images import PARTIAL
from inspection.record.schema import Event, Inspection, Run
from inspection.record.store import Store, utcnow

CHUNK = 500  # rows marked missing per statement


def end_dangling_runs(store: Store) -> int:
    """Runs left without an end by a crash or a kill end at their last inspection (else their start):
    reports would otherwise count them as production for ever. Their images are reconciled with
    their rows (see `_reconcile_images`). Returns how many runs."""
    with store.session() as s:
        runs = s.scalars(select(Run).where(Run.ended_at.is_(None))).all()
        for run in runs:
            last = s.scalar(select(func.max(Inspection.ts)).where(Inspection.run_id == run.id))
            missing, orphans = _reconcile_images(store, s, run.id, run.started_at, last or run.started_at)
            run.ended_at = last or run.started_at
            run.end_state = "crashed"
            run.end_message = (
                f"Run {run.id} ended without a stop (the program was killed or crashed); its end is its last "
                f"inspection. Images reconciled: {missing} marked missing, {orphans} without a row removed."
            )
            s.add(Event(ts=utcnow(), run_id=run.id, level="warning", kind="run", message=run.end_message))
        s.commit()
        return len(runs)


def _reconcile_images(store: Store, s: Session, run_id: int, start: dt.datetime, end: dt.datetime) -> tuple[int, int]:
    """After a crash: rows whose image never reached the disk are marked missing, and image files
    of the run's days that no row names (or that a kill left half written) are removed.
    Returns (rows marked, files removed)."""
    base, images = store.image_folders()
    lost = _rows_without_files(s, base, run_id)
    for k in range(0, len(lost), CHUNK):
        s.execute(update(Inspection).where(Inspection.id.in_(lost[k : k + CHUNK])).values(image_status="missing"))
    removed = 0
    day = start.date()
    while day <= end.date():
        removed += _remove_orphans(s, images / day.strftime("%Y%m%d"), day)
        day += dt.timedelta(days=1)
    return len(lost), removed


def _rows_without_files(s: Session, base: Path, run_id: int) -> list[int]:
    """The run's rows that name an image (or mask) the disk does not have."""
    rows = s.execute(
        select(Inspection.id, Inspection.image_path, Inspection.mask_path).where(
            Inspection.run_id == run_id, Inspection.image_path.is_not(None), Inspection.image_status.is_(None)
        )
    ).all()
    return [
        i
        for i, image, mask in rows
        if image is not None and (not (base / image).is_file() or (mask is not None and not (base / mask).is_file()))
    ]


def _remove_orphans(s: Session, folder: Path, day: dt.date) -> int:
    """Remove a day folder's images that no row of that day names, and the half-written ones; how many."""
    if not folder.is_dir():
        return 0
    t0 = dt.datetime.combine(day, dt.time())
    known = set(
        s.scalars(select(Inspection.part_id).where(Inspection.ts >= t0, Inspection.ts < t0 + dt.timedelta(days=1)))
    )
    removed = 0
    for f in folder.iterdir():
        if f.name.endswith(PARTIAL) or (f.suffix == ".png" and f.stem.removesuffix("_mask") not in known):
            f.unlink(missing_ok=True)
            removed += 1
    return removed
