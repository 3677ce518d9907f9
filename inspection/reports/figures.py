"""The data behind a shift report, aggregated in SQL (a 100,000-part shift in seconds), and its
exports: the figures as JSON, one CSV row per inspection. `inspection.reports.pdf` draws the PDF.

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, cast, func, select, text
from sqlalchemy.orm import Session

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
        where = _in_window(window, last_id)
        runs = _runs(s, window, now)
        by_verdict = _verdict_counts(s, where)
        outcomes = _relabel_outcomes(s, where)
        hours, p_bar = _control_chart(window, _parts_per_hour(s, window, where))
        production = _production_minutes(runs, window, now)
        span = max(0.0, (min(window.end, now) - window.start).total_seconds()) / 60
        return ReportData(
            window=window,
            last_id=last_id,
            tz=str(tz),
            generated_at=now,
            line=line or ", ".join(sorted({r.line for r in runs})) or "-",
            stations=tuple(sorted({r.station for r in runs})),
            cameras=tuple(sorted({r.camera_spec for r in runs})),
            recipes=tuple(sorted({_recipe_label(r) for r in runs})),
            models=_models(s, runs, where),
            thresholds_in_force=tuple(
                {"ok_below": a, "ng_at": b}
                for a, b in sorted({(r.ok_below, r.ng_at) for r in runs if r.ng_at is not None})
            ),
            software=tuple(sorted({r.software_version for r in runs})),
            inspected=sum(by_verdict.values()),
            ok=by_verdict.get("OK", 0),
            ng=by_verdict.get("NG", 0),
            review=by_verdict.get("REVIEW", 0),
            good_in_the_end=_good_in_the_end(by_verdict, outcomes),
            production_minutes=production,
            downtime_minutes=max(0.0, span - production),
            pareto=_pareto(s, store.engine.dialect.name, window, last_id),
            hours=hours,
            p_bar=p_bar,
            histogram=_histogram(s, where),
            relabels=_relabel_figures(outcomes),
            worst=_worst_rejects(s, store, where),
            events=_events(s, window),
            per_station=_per_station(s, where),
        )


# The rows a report counts: a tuple of conditions on `inspections`.
Where = tuple[ColumnElement[bool], ...]


def _in_window(window: Window, last_id: int) -> Where:
    """The inspections in the window, none newer than the last row the report read."""
    return (Inspection.ts >= window.start, Inspection.ts < window.end, Inspection.id <= last_id)


def _runs(s: Session, window: Window, now: dt.datetime) -> Sequence[Run]:
    """The runs that overlap the window (a run still going counts until now)."""
    q = select(Run).where(Run.started_at < window.end, func.coalesce(Run.ended_at, now) > window.start)
    return s.execute(q).scalars().all()


def _recipe_label(run: Run) -> str:
    """A run's recipe with its version (when it has one)."""
    return run.recipe + (f" v{run.recipe_version}" if run.recipe_version else "")


def _verdict_counts(s: Session, where: Where) -> dict[str, int]:
    """Parts per verdict (OK, NG, REVIEW)."""
    q = select(PART_VERDICT, func.count()).where(*where, PART_ROW).group_by(PART_VERDICT)
    return {verdict: n for verdict, n in s.execute(q).all()}


def _models(s: Session, runs: Sequence[Run], where: Where) -> tuple[dict[str, Any], ...]:
    """The models of the runs and of the window's inspections, each with its own thresholds."""
    model_ids = {r.model_version_id for r in runs} | set(
        s.scalars(select(Inspection.model_version_id).where(*where).distinct())
    )
    models = s.scalars(select(ModelVersion).where(ModelVersion.id.in_(model_ids)).order_by(ModelVersion.id)).all()
    return tuple(
        {
            "name": m.name,
            "version": m.version,
            "kind": m.kind,
            "sha256": m.sha256,
            "thresholds": json.loads(m.thresholds_json),
        }
        for m in models
    )


def _pareto(s: Session, dialect: str, window: Window, last_id: int) -> tuple[tuple[str, int], ...]:
    """NG parts per defect class, most first ("unclassified" for NG parts with no class)."""
    rows = s.execute(
        text(
            "SELECT CASE WHEN j.value IS NULL THEN 'unclassified' ELSE j.value END AS cls, "
            "count(DISTINCT i.id) AS n "
            f"FROM inspections AS i {json_values_join(dialect, 'i.classes_json')} "
            "WHERE i.verdict = 'NG' AND i.ts >= :a AND i.ts < :b AND i.id <= :last "
            "GROUP BY cls ORDER BY n DESC, cls"
        ),
        {"a": window.start, "b": window.end, "last": last_id},
    ).all()
    return tuple((str(c), int(n)) for c, n in rows)


def _parts_per_hour(s: Session, window: Window, where: Where) -> dict[int, tuple[int, int]]:
    """Parts and NG parts per hour of the window, by the hour's number (hours without parts left out)."""
    # Whole seconds since the window's start, then whole hours (julianday's doubles put parts
    # stamped on the hour into the hour before).
    seconds = epoch_seconds(Inspection.ts) - int(window.start.replace(tzinfo=dt.UTC).timestamp())
    hour = seconds // 3600
    hourly = s.execute(
        select(hour, func.count(), func.sum(cast(PART_VERDICT == "NG", Integer)))
        .where(*where, PART_ROW)
        .group_by(hour)
        .order_by(hour)
    ).all()
    return {int(k): (int(n), int(g or 0)) for k, n, g in hourly}


def _control_chart(window: Window, per_hour: dict[int, tuple[int, int]]) -> tuple[tuple[HourPoint, ...], float]:
    """The p-chart: each hour from the first to the last with parts (hours without parts stay on the
    axis, empty) with its 3-sigma limits, and the mean NG rate p."""
    p_total = sum(n for n, _ in per_hour.values())
    p_bar = sum(g for _, g in per_hour.values()) / p_total if p_total else 0.0
    hours = []
    for k in range(min(per_hour, default=0), max(per_hour, default=-1) + 1):
        n, g = per_hour.get(k, (0, 0))
        sigma = math.sqrt(p_bar * (1 - p_bar) / n) if n else 0.0
        lcl, ucl = max(0.0, p_bar - 3 * sigma), min(1.0, p_bar + 3 * sigma)
        hours.append(HourPoint(window.start + dt.timedelta(hours=k), n, g, lcl, ucl))
    return tuple(hours), p_bar


def _histogram(s: Session, where: Where) -> tuple[tuple[float, float, int], ...]:
    """HIST_BINS equal bins from the lowest score to the highest, with their parts; empty with no scores."""
    lo, hi = s.execute(select(func.min(Inspection.score), func.max(Inspection.score)).where(*where)).one()
    if lo is None or hi is None:
        return ()
    width = (hi - lo) / HIST_BINS if hi > lo else 1.0
    b = least(int_floor((Inspection.score - lo) / width), HIST_BINS - 1)
    q = select(b, func.count()).where(*where, Inspection.score.is_not(None)).group_by(b)
    counts: dict[int, int] = {k: n for k, n in s.execute(q).all()}
    return tuple((lo + k * width, lo + (k + 1) * width, int(counts.get(k, 0))) for k in range(HIST_BINS))


def _worst_rejects(s: Session, store: Store, where: Where) -> tuple[dict[str, Any], ...]:
    """The WORST_REJECTS parts not OK with the highest scores, with their image files on this machine."""
    rows = (
        s.execute(
            select(Inspection)
            .where(*where, Inspection.verdict != "OK")
            .order_by(Inspection.score.desc().nulls_last(), Inspection.id)
            .limit(WORST_REJECTS)
        )
        .scalars()
        .all()
    )
    return tuple(
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
        for r in rows
    )


def _events(s: Session, window: Window) -> tuple[dict[str, Any], ...]:
    """The event log of the window, oldest first."""
    events = s.scalars(select(Event).where(Event.ts >= window.start, Event.ts < window.end).order_by(Event.id)).all()
    return tuple(
        {"ts": e.ts, "level": e.level, "kind": e.kind, "message": e.message, "acknowledged_at": e.acknowledged_at}
        for e in events
    )


def _relabel_outcomes(s: Session, where: Where) -> dict[tuple[str, str], int]:
    """Relabelled parts by (the model's verdict, their current label): each part's latest relabel counts."""
    latest = (
        select(func.max(Relabel.id))
        .join(Inspection, Inspection.id == Relabel.inspection_id)
        .where(*where)
        .group_by(Relabel.inspection_id)
    )
    q = (
        select(Inspection.verdict, Relabel.verdict, func.count())
        .join(Relabel, Relabel.inspection_id == Inspection.id)
        .where(Relabel.id.in_(latest))
        .group_by(Inspection.verdict, Relabel.verdict)
    )
    return {(model, label): int(n) for model, label, n in s.execute(q).all()}


def _good_in_the_end(by_verdict: dict[str, int], outcomes: dict[tuple[str, str], int]) -> int:
    """The station's OK parts not relabelled NG, plus NG or REVIEW parts relabelled OK."""
    return (
        by_verdict.get("OK", 0)
        - outcomes.get(("OK", "NG"), 0)
        + outcomes.get(("NG", "OK"), 0)
        + outcomes.get(("REVIEW", "OK"), 0)
    )


def _relabel_figures(outcomes: dict[tuple[str, str], int]) -> dict[str, int] | None:
    """The relabel outcomes a report shows; None when no part was relabelled."""
    if not outcomes:
        return None
    return {
        "relabelled": sum(outcomes.values()),
        "confirmed_ng": outcomes.get(("NG", "NG"), 0),
        "false_rejects": outcomes.get(("NG", "OK"), 0),
        "escapes_found": outcomes.get(("OK", "NG"), 0),
        "confirmed_ok": outcomes.get(("OK", "OK"), 0),
        "review_to_ok": outcomes.get(("REVIEW", "OK"), 0),
        "review_to_ng": outcomes.get(("REVIEW", "NG"), 0),
    }


def _production_minutes(runs: Sequence[Run], window: Window, now: dt.datetime) -> float:
    """Minutes of the window (up to now) with a run going."""
    seconds = sum(
        max(0.0, (min(r.ended_at or now, window.end, now) - max(r.started_at, window.start)).total_seconds())
        for r in runs
    )
    return seconds / 60


def _per_station(s: Session, where: Where) -> tuple[dict[str, Any], ...]:
    """Parts per verdict and first-pass yield by line and station."""
    q = (
        select(Run.line, Run.station, PART_VERDICT, func.count())
        .join(Run, Run.id == Inspection.run_id)
        .where(*where, PART_ROW)
        .group_by(Run.line, Run.station, PART_VERDICT)
    )
    stations: dict[tuple[str, str], dict[str, Any]] = {}
    for line_name, station, verdict, n in s.execute(q).all():
        row = stations.setdefault(
            (line_name, station), {"line": line_name, "station": station, "parts": 0, "ok": 0, "ng": 0, "review": 0}
        )
        row[verdict.lower()] = int(n)
        row["parts"] += int(n)
    return tuple({**row, "yield_pct": 100.0 * row["ok"] / row["parts"]} for _, row in sorted(stations.items()))


def write_json(data: ReportData, path: Path) -> None:
    """The report's figures (`ReportData.figures`) as JSON."""
    path.write_text(json.dumps(data.figures(), indent=2))


def write_csv(store: Store, data: ReportData, path: Path) -> int:
    """One row per inspection of the report (CSV_COLUMNS; the rows its figures count), streamed;
    returns the number of rows."""
    n = 0
    with store.session() as s, path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for row in s.execute(_csv_query(data).execution_options(yield_per=5000)):
            w.writerow(_csv_row(row))
            n += 1
    return n


def _csv_query(data: ReportData) -> Select[*tuple[Any, ...]]:
    """The report's inspections, oldest first, with their shift's name and their model (CSV_COLUMNS, raw)."""
    i = Inspection
    return (
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
        .where(*_in_window(data.window, data.last_id))
        .order_by(i.id)
    )


def _csv_row(row: Sequence[Any]) -> list[Any]:
    """One row of `_csv_query` as written to the CSV."""
    (part_id, ts, shift, run_id, seq, camera_id, recipe, mname, mversion, msha) = row[:10]
    (score, verdict, classes, areas, latency, image, mask, error) = row[10:]
    return [
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
