"""The engineers' review: inspected parts filtered and sorted for review, one page at a time, and a
part's full story (the model's judgement and every relabel). Everything is one SQL query on
indexed columns; callers run these off the GUI thread."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import Select, Subquery, and_, func, select

from inspection.errors import ConfigError
from inspection.record.schema import Inspection, ModelVersion, Relabel
from inspection.record.store import Store

LABEL_STATES = ("any", "unreviewed", "confirmed", "corrected")
SORTS = ("score_desc", "score_asc", "newest", "oldest")


@dataclasses.dataclass(frozen=True)
class ReviewFilter:
    """Which parts to review. Times naive UTC; None: no limit."""

    shift_id: int | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    verdicts: tuple[str, ...] = ("NG", "REVIEW")  # empty: every verdict
    defect_class: str | None = None  # the model's class
    score_min: float | None = None
    score_max: float | None = None
    label_state: str = (
        "any"  # unreviewed: never relabelled; confirmed: latest label agrees with the model; corrected: it does not
    )
    sort: str = "score_desc"

    def __post_init__(self) -> None:
        if self.label_state not in LABEL_STATES:
            raise ConfigError(f"Label state must be one of {', '.join(LABEL_STATES)}, not {self.label_state!r}.")
        if self.sort not in SORTS:
            raise ConfigError(f"Sort must be one of {', '.join(SORTS)}, not {self.sort!r}.")
        if self.score_min is not None and self.score_max is not None and self.score_min > self.score_max:
            raise ConfigError(f"The lowest score ({self.score_min}) is above the highest ({self.score_max}).")


@dataclasses.dataclass(frozen=True)
class ReviewRow:
    id: int
    part_id: str
    ts: dt.datetime  # naive UTC
    recipe: str
    verdict: str  # the model's, never changed
    score: float | None
    classes: tuple[str, ...]
    image: Path | None  # absolute; None when not kept
    mask: Path | None  # the model's mask
    model: str  # name vVersion
    label: str | None  # the latest relabel's verdict; None: not reviewed
    label_classes: tuple[str, ...]
    label_mask: Path | None


@dataclasses.dataclass(frozen=True)
class LabelRow:
    id: int
    at: dt.datetime
    who: str
    previous_verdict: str
    verdict: str
    classes: tuple[str, ...]
    mask: Path | None
    comment: str


def _latest_label() -> Subquery:
    """Each relabelled inspection (iid) with its latest relabel (rid)."""
    return (
        select(Relabel.inspection_id.label("iid"), func.max(Relabel.id).label("rid"))
        .group_by(Relabel.inspection_id)
        .subquery()
    )


def _query(f: ReviewFilter) -> Select[Inspection, str, str, Relabel]:
    latest = _latest_label()
    q = (
        select(Inspection, ModelVersion.name, ModelVersion.version, Relabel)
        .join(ModelVersion, ModelVersion.id == Inspection.model_version_id)
        .outerjoin(latest, latest.c.iid == Inspection.id)
        .outerjoin(Relabel, Relabel.id == latest.c.rid)
    )
    if f.shift_id is not None:
        q = q.where(Inspection.shift_id == f.shift_id)
    if f.start is not None:
        q = q.where(Inspection.ts >= f.start)
    if f.end is not None:
        q = q.where(Inspection.ts < f.end)
    if f.verdicts:
        q = q.where(Inspection.verdict.in_(f.verdicts))
    if f.defect_class:  # the quoted name inside the JSON list, with LIKE's wildcards taken literally
        name = json.dumps(f.defect_class).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        q = q.where(Inspection.classes_json.like(f"%{name}%", escape="\\"))
    if f.score_min is not None:
        q = q.where(Inspection.score >= f.score_min)
    if f.score_max is not None:
        q = q.where(Inspection.score <= f.score_max)
    if f.label_state == "unreviewed":
        q = q.where(Relabel.id.is_(None))
    elif f.label_state == "confirmed":
        q = q.where(Relabel.verdict == Inspection.verdict)
    elif f.label_state == "corrected":
        q = q.where(and_(Relabel.id.is_not(None), Relabel.verdict != Inspection.verdict))
    return q


def count_parts(store: Store, f: ReviewFilter) -> int:
    q = _query(f).with_only_columns(func.count()).order_by(None)
    with store.session() as s:
        return int(s.scalar(q) or 0)


def page(store: Store, f: ReviewFilter, offset: int = 0, limit: int = 100) -> list[ReviewRow]:
    """One page of the parts `f` selects, in its order (ties by newest first)."""
    order = {
        "score_desc": (Inspection.score.desc(), Inspection.id.desc()),
        "score_asc": (Inspection.score.asc(), Inspection.id.desc()),
        "newest": (Inspection.id.desc(),),
        "oldest": (Inspection.id.asc(),),
    }[f.sort]
    q = _query(f).order_by(*order).offset(max(0, offset)).limit(max(1, limit))
    with store.session() as s:
        rows = s.execute(q).all()
    return [_row(store, i, name, version, r) for i, name, version, r in rows]


def _row(store: Store, i: Inspection, name: str, version: str, r: Relabel | None) -> ReviewRow:
    return ReviewRow(
        id=i.id,
        part_id=i.part_id,
        ts=i.ts,
        recipe=i.recipe,
        verdict=i.verdict,
        score=i.score,
        classes=tuple(json.loads(i.classes_json)),
        image=store.image_file(i.image_path),
        mask=store.image_file(i.mask_path),
        model=f"{name} v{version}",
        label=r.verdict if r else None,
        label_classes=tuple(json.loads(r.classes_json)) if r else (),
        label_mask=store.image_file(r.mask_path) if r else None,
    )


def part(store: Store, part_id: str) -> ReviewRow:
    q = _query(ReviewFilter(verdicts=())).where(Inspection.part_id == part_id)
    with store.session() as s:
        row = s.execute(q).first()
    if row is None:
        raise ConfigError(f"The database {store.name} has no part {part_id}.")
    return _row(store, *row)


def history(store: Store, part_id: str) -> list[LabelRow]:
    """Every relabel of a part, oldest first."""
    q = (
        select(Relabel)
        .join(Inspection, Inspection.id == Relabel.inspection_id)
        .where(Inspection.part_id == part_id)
        .order_by(Relabel.id)
    )
    with store.session() as s:
        rows = s.scalars(q).all()
    return [
        LabelRow(
            r.id,
            r.at,
            r.who,
            r.previous_verdict,
            r.verdict,
            tuple(json.loads(r.classes_json)),
            store.image_file(r.mask_path),
            r.comment,
        )
        for r in rows
    ]


@dataclasses.dataclass(frozen=True)
class PartImages:
    """What the part view shows: the image (RGB), the model's mask and the current label's mask
    (bool, the image's size; empty when there is none)."""

    image: np.ndarray
    model_mask: np.ndarray
    label_mask: np.ndarray


def load_part_images(row: ReviewRow) -> PartImages | None:
    """The part's image and masks; None when its image was not kept or cannot be read."""
    if row.image is None:
        return None
    bgr = cv2.imread(str(row.image), cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return PartImages(image, _mask(row.mask, image.shape[:2]), _mask(row.label_mask, image.shape[:2]))


def _mask(path: Path | None, shape: tuple[int, ...]) -> np.ndarray:
    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path is not None else None
    if m is None or m.shape != shape:
        return np.zeros(shape, bool)
    return m > 127


def thumbnail(row: ReviewRow, height: int = 96) -> np.ndarray | None:
    """A small RGB image of the part with the model's outline (the current label's when relabelled)."""
    from inspection.runtime.overlay import recorded_part

    verdict = row.label or row.verdict
    rgb = recorded_part(row.image, row.label_mask if row.label else row.mask, verdict, shown_height=height)
    if rgb is None:
        return None
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)
