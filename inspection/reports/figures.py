"""The data behind a shift report, aggregated in SQL (a 100,000-part shift in seconds), and its
exports: the figures as JSON, one CSV row per inspection. `inspection.report_pdf` draws the PDF.

Every figure comes from the record: counts from `inspections`, production time and thresholds from
`runs`, the event log from `events`. Times are naive UTC in the database and shown in the line's
time zone.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from sqlalchemy import Integer, cast, func, select, text

from inspection.errors import ConfigError
from inspection.record.schema import PART_ROW, PART_VERDICT, Event, Inspection, ModelVersion, Relabel, Run, Shift
from inspection.record.sqlfn import epoch_seconds, int_floor, json_values_join, least
from inspection.record.store import Store, utcnow

WORST_REJECTS = 12
HIST_BINS = 30
CSV_COLUMNS = (
    "part_id",
    "time_utc",
    "shift",
    "run_id",
    "seq",
    "camera_id",
    "recipe",
    "model",
    "model_sha256",
    "score",
    "verdict",
    "classes",
    "defect_area_px",
    "latency_ms",
    "image_path",
    "mask_path",
    "error",
)


@dataclasses.dataclass(frozen=True)
class Window:
    """What a report covers: [start, end) in naive UTC, a title, and the shift it is (if one)."""

    start: dt.datetime
    end: dt.datetime
    title: str
    shift_id: int | None = None


@dataclasses.dataclass(frozen=True)
class HourPoint:
    start: dt.datetime  # naive UTC
    parts: int
    ng: int
    lcl: float
    ucl: float

    @property
    def p(self) -> float:
        return self.ng / self.parts if self.parts else 0.0

    @property
    def out_of_control(self) -> bool:
        return self.parts > 0 and not self.lcl <= self.p <= self.ucl


@dataclasses.dataclass(frozen=True)
class ReportData:
    window: Window
    last_id: int  # the newest inspection row read: every figure (and the CSV) stops there, even while the line writes
    tz: str
    generated_at: dt.datetime  # naive UTC
    line: str
    stations: tuple[str, ...]
    cameras: tuple[str, ...]
    recipes: tuple[str, ...]
    models: tuple[dict[str, Any], ...]  # name, version, sha256, kind, thresholds (the model's)
    thresholds_in_force: tuple[dict[str, Any], ...]  # per distinct (ok_below, ng_at) of the runs
    software: tuple[str, ...]
    inspected: int
    ok: int
    ng: int
    review: int
    good_in_the_end: int  # the station's OK parts not relabelled NG, plus NG or REVIEW parts relabelled OK
    production_minutes: float
    downtime_minutes: float
    pareto: tuple[tuple[str, int], ...]  # NG parts per defect class, most first
    hours: tuple[HourPoint, ...]
    p_bar: float
    histogram: tuple[tuple[float, float, int], ...]  # (from, to, parts) over the scores
    relabels: (
        dict[str, int] | None
    )  # relabelled, confirmed_ng, false_rejects, escapes_found, ...; None: no part relabelled
    worst: tuple[dict[str, Any], ...]  # part_id, ts, verdict, score, classes, image, mask
    events: tuple[dict[str, Any], ...]  # ts, level, kind, message, acknowledged_at
    per_station: tuple[
        dict[str, Any], ...
    ] = ()  # line, station, parts, ok, ng, review, yield_pct (first pass), by line and station

    @property
    def yield_pct(self) -> float | None:
        return 100.0 * self.good_in_the_end / self.inspected if self.inspected else None

    @property
    def first_pass_yield_pct(self) -> float | None:
        return 100.0 * self.ok / self.inspected if self.inspected else None

    @property
    def parts_per_min(self) -> float:
        return self.inspected / self.production_minutes if self.production_minutes > 0 else 0.0

    def figures(self) -> dict[str, Any]:
        """The report's figures for other systems (the JSON export)."""
        w = self.window
        return {
            "title": w.title,
            "shift_id": w.shift_id,
            "from_utc": _iso(w.start),
            "to_utc": _iso(w.end),
            "time_zone": self.tz,
            "generated_at_utc": _iso(self.generated_at),
            "line": self.line,
            "stations": list(self.stations),
            "cameras": list(self.cameras),
            "recipes": list(self.recipes),
            "models": list(self.models),
            "thresholds_in_force": list(self.thresholds_in_force),
            "software": list(self.software),
            "inspected": self.inspected,
            "ok": self.ok,
            "ng": self.ng,
            "review": self.review,
            "yield_pct": self.yield_pct,
            "first_pass_yield_pct": self.first_pass_yield_pct,
            "parts_per_min": self.parts_per_min,
            "production_minutes": self.production_minutes,
            "downtime_minutes": self.downtime_minutes,
            "ng_pareto": [{"class": c, "ng_parts": n} for c, n in self.pareto],
            "ng_rate_per_hour": [
                {
                    "hour_utc": _iso(h.start),
                    "parts": h.parts,
                    "ng": h.ng,
                    "p": h.p,
                    "lcl": h.lcl,
                    "ucl": h.ucl,
                    "out_of_control": h.out_of_control,
                }
                for h in self.hours
            ],
            "p_bar": self.p_bar,
            "score_histogram": [{"from": a, "to": b, "parts": n} for a, b, n in self.histogram],
            "relabels": self.relabels,
            "worst_rejects": [
                {
                    k: (_iso(v) if isinstance(v, dt.datetime) else str(v) if isinstance(v, Path) else v)
                    for k, v in r.items()
                }
                for r in self.worst
            ],
            "events": [{k: (_iso(v) if isinstance(v, dt.datetime) else v) for k, v in e.items()} for e in self.events],
            "per_station": list(self.per_station),
        }


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.replace(tzinfo=dt.UTC).isoformat()


def shift_window(store: Store, shift_id: int) -> Window:
    with store.session() as s:
        row = s.get(Shift, shift_id)
    if row is None:
        raise ConfigError(f"The database {store.name} has no shift {shift_id}; `lepton-inspect shifts` lists them.")
    return Window(row.start_at, row.end_at, f"Shift {row.name}", row.id)


def time_window(start: str, end: str, tz: dt.tzinfo) -> Window:
    """A window from ISO 8601 times; a time without an offset is in the line's time zone."""

    def parse(value: str, what: str) -> dt.datetime:
        try:
            t = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(
                f"--{what} {value!r} is not an ISO 8601 time such as 2026-11-27T06:00 or 2026-11-27T06:00+01:00."
            ) from None
        t = t if t.tzinfo else t.replace(tzinfo=tz)
        return t.astimezone(dt.UTC).replace(tzinfo=None)

    a, b = parse(start, "from"), parse(end, "to")
    if b <= a:
        raise ConfigError(f"--to ({end}) must be after --from ({start}).")
    return Window(a, b, f"{start} to {end}")


def list_shifts(store: Store) -> list[dict[str, Any]]:
    """Every shift in the record with its counts, newest first."""
    q = (
        select(
            Shift.id,
            Shift.name,
            Shift.start_at,
            Shift.end_at,
            func.coalesce(func.sum(cast(PART_ROW, Integer)), 0),
            func.coalesce(func.sum(cast(PART_ROW & (PART_VERDICT == "OK"), Integer)), 0),
            func.coalesce(func.sum(cast(PART_ROW & (PART_VERDICT == "NG"), Integer)), 0),
            func.coalesce(func.sum(cast(PART_ROW & (PART_VERDICT == "REVIEW"), Integer)), 0),
        )
        .join(Inspection, Inspection.shift_id == Shift.id, isouter=True)
        .group_by(Shift.id)
        .order_by(Shift.start_at.desc())
    )
    with store.session() as s:
        return [
            {"id": i, "name": n, "start_utc": a, "end_utc": b, "inspected": c, "ok": ok, "ng": ng, "review": rv}
            for i, n, a, b, c, ok, ng, rv in s.execute(q).all()
        ]


def gather(store: Store, window: Window, tz: dt.tzinfo, line: str = "", now: dt.datetime | None = None) -> ReportData:
    """Everything a report shows, from the record."""
    now = now or utcnow()
    with store.session() as s:
        last_id = s.scalar(select(func.max(Inspection.id))) or 0
        in_window = (Inspection.ts >= window.start, Inspection.ts < window.end, Inspection.id <= last_id)
        by_verdict = dict(
            s.execute(select(PART_VERDICT, func.count()).where(*in_window, PART_ROW).group_by(PART_VERDICT)).all()
        )
        by_station = s.execute(
            select(Run.line, Run.station, PART_VERDICT, func.count())
            .join(Run, Run.id == Inspection.run_id)
            .where(*in_window, PART_ROW)
            .group_by(Run.line, Run.station, PART_VERDICT)
        ).all()
        runs = (
            s.execute(select(Run).where(Run.started_at < window.end, func.coalesce(Run.ended_at, now) > window.start))
            .scalars()
            .all()
        )
        model_ids = {r.model_version_id for r in runs} | set(
            s.scalars(select(Inspection.model_version_id).where(*in_window).distinct())
        )
        models = s.scalars(select(ModelVersion).where(ModelVersion.id.in_(model_ids)).order_by(ModelVersion.id)).all()
        pareto = s.execute(
            text(
                "SELECT CASE WHEN j.value IS NULL THEN 'unclassified' ELSE j.value END AS cls, count(DISTINCT i.id) AS n "
                f"FROM inspections AS i {json_values_join(store.engine.dialect.name, 'i.classes_json')} "
                "WHERE i.verdict = 'NG' AND i.ts >= :a AND i.ts < :b AND i.id <= :last GROUP BY cls ORDER BY n DESC, cls"
            ),
            {"a": window.start, "b": window.end, "last": last_id},
        ).all()
        # Whole seconds since the window's start, then whole hours (julianday's doubles put parts
        # stamped on the hour into the hour before).
        seconds = epoch_seconds(Inspection.ts) - int(window.start.replace(tzinfo=dt.UTC).timestamp())
        hour = seconds // 3600
        hourly = s.execute(
            select(hour, func.count(), func.sum(cast(PART_VERDICT == "NG", Integer)))
            .where(*in_window, PART_ROW)
            .group_by(hour)
            .order_by(hour)
        ).all()
        lo, hi = s.execute(select(func.min(Inspection.score), func.max(Inspection.score)).where(*in_window)).one()
        histogram: list[tuple[float, float, int]] = []
        if lo is not None:
            width = (hi - lo) / HIST_BINS if hi > lo else 1.0
            b = least(int_floor((Inspection.score - lo) / width), HIST_BINS - 1)
            counts = dict(
                s.execute(select(b, func.count()).where(*in_window, Inspection.score.is_not(None)).group_by(b)).all()
            )
            histogram = [(lo + k * width, lo + (k + 1) * width, int(counts.get(k, 0))) for k in range(HIST_BINS)]
        worst_rows = (
            s.execute(
                select(Inspection)
                .where(*in_window, Inspection.verdict != "OK")
                .order_by(Inspection.score.desc().nulls_last(), Inspection.id)
                .limit(WORST_REJECTS)
            )
            .scalars()
            .all()
        )
        events = s.scalars(
            select(Event).where(Event.ts >= window.start, Event.ts < window.end).order_by(Event.id)
        ).all()
        # Each relabelled part's current label (its latest relabel) against the model's verdict.
        latest = (
            select(func.max(Relabel.id))
            .join(Inspection, Inspection.id == Relabel.inspection_id)
            .where(*in_window)
            .group_by(Relabel.inspection_id)
        )
        outcomes = dict(
            ((m, l), int(n))
            for m, l, n in s.execute(
                select(Inspection.verdict, Relabel.verdict, func.count())
                .join(Relabel, Relabel.inspection_id == Inspection.id)
                .where(Relabel.id.in_(latest))
                .group_by(Inspection.verdict, Relabel.verdict)
            ).all()
        )
    per_hour = {int(k): (int(n), int(g or 0)) for k, n, g in hourly}
    p_total = sum(n for n, _ in per_hour.values())
    p_bar = sum(g for _, g in per_hour.values()) / p_total if p_total else 0.0
    hours = []
    for k in range(
        min(per_hour, default=0), max(per_hour, default=-1) + 1
    ):  # hours without parts stay on the axis, empty
        n, g = per_hour.get(k, (0, 0))
        sigma = math.sqrt(p_bar * (1 - p_bar) / n) if n else 0.0
        hours.append(
            HourPoint(
                window.start + dt.timedelta(hours=k), n, g, max(0.0, p_bar - 3 * sigma), min(1.0, p_bar + 3 * sigma)
            )
        )
    production = (
        sum(
            max(0.0, (min(r.ended_at or now, window.end, now) - max(r.started_at, window.start)).total_seconds())
            for r in runs
        )
        / 60
    )
    span = max(0.0, (min(window.end, now) - window.start).total_seconds()) / 60
    inspected = sum(by_verdict.values())
    stations: dict[tuple[str, str], dict[str, Any]] = {}
    for line_name, station, verdict, n in by_station:
        row = stations.setdefault(
            (line_name, station), {"line": line_name, "station": station, "parts": 0, "ok": 0, "ng": 0, "review": 0}
        )
        row[verdict.lower()] = int(n)
        row["parts"] += int(n)
    return ReportData(
        window=window,
        last_id=last_id,
        tz=str(tz),
        generated_at=now,
        line=line or ", ".join(sorted({r.line for r in runs})) or "-",
        stations=tuple(sorted({r.station for r in runs})),
        cameras=tuple(sorted({r.camera_spec for r in runs})),
        recipes=tuple(
            sorted({r.recipe + (f" v{r.recipe_version}" if r.recipe_version else "") for r in runs})
        ),  # (with its version)
        models=tuple(
            {
                "name": m.name,
                "version": m.version,
                "kind": m.kind,
                "sha256": m.sha256,
                "thresholds": json.loads(m.thresholds_json),
            }
            for m in models
        ),
        thresholds_in_force=tuple(
            {"ok_below": a, "ng_at": b} for a, b in sorted({(r.ok_below, r.ng_at) for r in runs if r.ng_at is not None})
        ),
        software=tuple(sorted({r.software_version for r in runs})),
        inspected=inspected,
        ok=by_verdict.get("OK", 0),
        ng=by_verdict.get("NG", 0),
        review=by_verdict.get("REVIEW", 0),
        good_in_the_end=by_verdict.get("OK", 0)
        - outcomes.get(("OK", "NG"), 0)
        + outcomes.get(("NG", "OK"), 0)
        + outcomes.get(("REVIEW", "OK"), 0),
        production_minutes=production,
        downtime_minutes=max(0.0, span - production),
        pareto=tuple((str(c), int(n)) for c, n in pareto),
        hours=tuple(hours),
        p_bar=p_bar,
        histogram=tuple(histogram),
        relabels=None
        if not outcomes
        else {
            "relabelled": sum(outcomes.values()),
            "confirmed_ng": outcomes.get(("NG", "NG"), 0),
            "false_rejects": outcomes.get(("NG", "OK"), 0),
            "escapes_found": outcomes.get(("OK", "NG"), 0),
            "confirmed_ok": outcomes.get(("OK", "OK"), 0),
            "review_to_ok": outcomes.get(("REVIEW", "OK"), 0),
            "review_to_ng": outcomes.get(("REVIEW", "NG"), 0),
        },
        worst=tuple(
            {
                "part_id": r.part_id,
                "ts": r.ts,
                "verdict": r.verdict,
                "score": r.score,
                "classes": json.loads(r.classes_json),
                "image": store.image_file(r.image_path),
                "mask": store.image_file(r.mask_path),
                "image_path": r.image_path,
            }
            for r in worst_rows
        ),
        events=tuple(
            {"ts": e.ts, "level": e.level, "kind": e.kind, "message": e.message, "acknowledged_at": e.acknowledged_at}
            for e in events
        ),
        per_station=tuple(
            {**row, "yield_pct": 100.0 * row["ok"] / row["parts"]} for _, row in sorted(stations.items())
        ),
    )


def write_json(data: ReportData, path: Path) -> None:
    path.write_text(json.dumps(data.figures(), indent=2))


def write_csv(store: Store, data: ReportData, path: Path) -> int:
    """One row per inspection of the report (CSV_COLUMNS; the rows its figures count), streamed;
    returns the number of rows."""
    window = data.window
    i = Inspection
    q = (
        select(
            i.part_id,
            i.ts,
            Shift.name,
            i.run_id,
            i.seq,
            i.camera_id,
            i.recipe,
            ModelVersion.name,
            ModelVersion.version,
            ModelVersion.sha256,
            i.score,
            i.verdict,
            i.classes_json,
            i.areas_json,
            i.latency_ms,
            i.image_path,
            i.mask_path,
            i.error,
        )
        .join(Shift, Shift.id == i.shift_id)
        .join(ModelVersion, ModelVersion.id == i.model_version_id)
        .where(i.ts >= window.start, i.ts < window.end, i.id <= data.last_id)
        .order_by(i.id)
    )
    n = 0
    with store.session() as s, path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for (
            part_id,
            ts,
            shift,
            run_id,
            seq,
            camera_id,
            recipe,
            mname,
            mversion,
            msha,
            score,
            verdict,
            classes,
            areas,
            latency,
            image,
            mask,
            error,
        ) in s.execute(q.execution_options(yield_per=5000)):
            w.writerow(
                [
                    part_id,
                    _iso(ts),
                    shift,
                    run_id,
                    seq,
                    camera_id,
                    recipe,
                    f"{mname} v{mversion}",
                    msha,
                    "" if score is None else f"{score:.6g}",
                    verdict,
                    ";".join(json.loads(classes)),
                    sum(json.loads(areas).values()),
                    f"{latency:.1f}",
                    image or "",
                    mask or "",
                    error or "",
                ]
            )
            n += 1
    return n
