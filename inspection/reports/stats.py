"""Station statistics read from the record, never kept only in memory, so a restart loses none:
counters over a time window (a shift, since the station started), the NG-rate trend, the latest
rejects and the event log. Everything is aggregated in SQL; callers run these off the GUI thread.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

from sqlalchemy import Integer, cast, func, select

from inspection.record.schema import PART_ROW, PART_VERDICT, Event, Inspection, Run
from inspection.record.sqlfn import int_floor, julian_day
from inspection.record.store import Store

RATE_WINDOW = dt.timedelta(minutes=5)  # parts/min counts the parts of the last five minutes
LATENCY_PARTS = 2000  # latency percentiles over the window's latest parts: a second's query stays small in a long shift


@dataclasses.dataclass(frozen=True)
class Counters:
    parts: int = 0
    ok: int = 0
    ng: int = 0
    review: int = 0
    dropped: int = 0  # frames never inspected (dropped or failed), of the ended runs that started in the window
    parts_per_min: float = 0.0
    latency_ms_p50: float = 0.0  # over the window's latest LATENCY_PARTS parts
    latency_ms_p99: float = 0.0

    @property
    def yield_pct(self) -> float | None:
        return 100.0 * self.ok / self.parts if self.parts else None


def counters(
    store: Store, start: dt.datetime, end: dt.datetime | None = None, now: dt.datetime | None = None
) -> Counters:
    """Counters of the parts inspected in [start, end) (naive UTC)."""
    window = [Inspection.ts >= start] + ([Inspection.ts < end] if end is not None else [])
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with store.session() as s:
        by_verdict = dict(
            s.execute(select(PART_VERDICT, func.count()).where(*window, PART_ROW).group_by(PART_VERDICT)).all()
        )
        parts = sum(by_verdict.values())
        latest = sorted(
            s.scalars(select(Inspection.latency_ms).where(*window).order_by(Inspection.id.desc()).limit(LATENCY_PARTS))
        )
        p50 = latest[_rank(len(latest), 0.50)] if latest else 0.0
        p99 = latest[_rank(len(latest), 0.99)] if latest else 0.0
        recent, first_recent = s.execute(
            select(func.count(), func.min(Inspection.ts)).where(*window, PART_ROW, Inspection.ts >= now - RATE_WINDOW)
        ).one()
        run_window = [Run.started_at >= start] + ([Run.started_at < end] if end is not None else [])
        dropped = (
            s.scalar(
                select(
                    func.coalesce(
                        func.sum(func.coalesce(Run.dropped_frames, 0) + func.coalesce(Run.failed_grabs, 0)), 0
                    )
                ).where(*run_window)
            )
            or 0
        )
    # The parts of the last five minutes over the time since the first of them: the line's rate
    # now, which falls while the line stands still.
    minutes = max(now - first_recent, dt.timedelta(seconds=1)).total_seconds() / 60 if recent else 1.0
    return Counters(
        parts=parts,
        ok=by_verdict.get("OK", 0),
        ng=by_verdict.get("NG", 0),
        review=by_verdict.get("REVIEW", 0),
        dropped=int(dropped),
        parts_per_min=recent / minutes,
        latency_ms_p50=p50,
        latency_ms_p99=p99,
    )


def _rank(n: int, q: float) -> int:
    """Zero-based nearest-rank index of quantile q among n sorted values."""
    return max(0, min(n - 1, int(-(-q * n // 1)) - 1))


@dataclasses.dataclass(frozen=True)
class TrendPoint:
    start: dt.datetime  # naive UTC
    parts: int
    ng: int

    @property
    def ng_rate(self) -> float | None:
        return self.ng / self.parts if self.parts else None


def trend_start(now: dt.datetime, bucket: dt.timedelta, buckets: int) -> dt.datetime:
    """The start of `buckets` whole buckets ending with the one that holds `now` (edges on the
    clock: 10:05, 10:10, ... for 5-minute buckets), so bars do not shift from second to second."""
    epoch = dt.datetime(2000, 1, 1)
    current = epoch + bucket * ((now - epoch) // bucket)
    return current - bucket * (buckets - 1)


def ng_trend(store: Store, since: dt.datetime, bucket: dt.timedelta, buckets: int) -> list[TrendPoint]:
    """Parts and NG parts per bucket from `since` (naive UTC), `buckets` buckets, empty ones included."""
    width = bucket.total_seconds()
    index = int_floor((julian_day(Inspection.ts) - julian_day(since)) * 86400.0 / width)
    q = (
        select(index, func.count(), func.sum(cast(PART_VERDICT == "NG", Integer)))
        .where(Inspection.ts >= since, Inspection.ts < since + bucket * buckets, PART_ROW)
        .group_by(index)
    )
    with store.session() as s:
        rows = {int(k): (int(n), int(ng or 0)) for k, n, ng in s.execute(q).all()}
    return [TrendPoint(since + bucket * k, *rows.get(k, (0, 0))) for k in range(buckets)]


@dataclasses.dataclass(frozen=True)
class PartRow:
    part_id: str
    ts: dt.datetime  # naive UTC
    seq: int
    verdict: str
    score: float | None
    classes: tuple[str, ...]
    image: Path | None  # absolute; None when the image was not kept (or is at another station)
    mask: Path | None


def recent_rejects(store: Store, limit: int = 8) -> list[PartRow]:
    """The latest NG and REVIEW parts, newest first."""
    q = select(Inspection).where(Inspection.verdict != "OK").order_by(Inspection.id.desc()).limit(limit)
    with store.session() as s:
        rows = s.scalars(q).all()
    return [
        PartRow(
            r.part_id,
            r.ts,
            r.seq,
            r.verdict,
            r.score,
            tuple(json.loads(r.classes_json)),
            store.image_file(r.image_path),
            store.image_file(r.mask_path),
        )  # (None on a plant database: images stay at their stations)
        for r in rows
    ]


@dataclasses.dataclass(frozen=True)
class EventRow:
    id: int
    ts: dt.datetime  # naive UTC
    level: str
    kind: str
    message: str
    acknowledged_at: dt.datetime | None


def recent_events(store: Store, limit: int = 50) -> list[EventRow]:
    """The latest events, newest first."""
    with store.session() as s:
        rows = s.scalars(select(Event).order_by(Event.id.desc()).limit(limit)).all()
    return [EventRow(r.id, r.ts, r.level, r.kind, r.message, r.acknowledged_at) for r in rows]
