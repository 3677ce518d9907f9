"""Station statistics from the record: the counters and the trend match independent SQL counts, read
from the station's SQLite file and from the plant database (PostgreSQL) its rows were forwarded to."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3

import pytest

from camera import TriggerMode
from inspection.record.store import utcnow
from inspection.reports import stats
from models.base import Thresholds
from tests.fakes import FakeInspector


def sql(path, query):
    con = sqlite3.connect(path)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


@pytest.fixture
def recorded(make_line, read_from):
    """Two runs: 8 parts with the fake model's own thresholds, then 6 all NG; the line, the start,
    and the store to read them from."""
    t0 = utcnow() - dt.timedelta(seconds=1)
    line = make_line()
    assert line.start(max_parts=8).wait(30)
    line.stop()
    line.setup = dataclasses.replace(line.setup, inspector=FakeInspector(thresholds=Thresholds(0.0, 1.0, 1e9)))
    assert line.start(max_parts=6).wait(30)
    line.stop()
    return line, t0, read_from(line.store)


def test_counters_match_the_database(recorded):
    line, t0, store = recorded
    c = stats.counters(store, t0)
    by = dict(sql(line.store.path, "select verdict, count(*) from inspections group by verdict"))
    assert (c.parts, c.ok, c.ng, c.review) == (14, by.get("OK", 0), by.get("NG", 0), by.get("REVIEW", 0))
    assert c.ng >= 6 and c.yield_pct == pytest.approx(100 * c.ok / 14)
    lat = sorted(v for (v,) in sql(line.store.path, "select latency_ms from inspections"))
    assert c.latency_ms_p50 == pytest.approx(lat[6]) and c.latency_ms_p99 == pytest.approx(
        lat[13]
    )  # nearest rank of 14
    assert c.parts_per_min > 0
    later = stats.counters(store, t0, now=utcnow() + dt.timedelta(minutes=10))  # the line stalled: no recent parts
    assert later.parts == 14 and later.parts_per_min == 0
    assert stats.counters(store, utcnow() + dt.timedelta(seconds=5)).parts == 0


def test_dropped_frames_of_ended_runs_are_counted(make_line, read_from):
    t0 = utcnow() - dt.timedelta(seconds=1)
    line = make_line(inspector=FakeInspector(delay_s=0.05), trigger=TriggerMode.FREE_RUN, queue_size=2)
    assert line.start(max_parts=10).wait(30)
    status = line.stop()
    assert status.dropped > 0
    assert sql(line.store.path, "select dropped_frames, failed_grabs from runs") == [
        (status.dropped, status.failed_grabs)
    ]
    assert stats.counters(read_from(line.store), t0).dropped == status.dropped + status.failed_grabs


def test_trend_ends_with_the_bucket_of_now_on_clock_edges(recorded):
    line, t0, store = recorded
    bucket = dt.timedelta(minutes=5)
    now = utcnow()
    since = stats.trend_start(now, bucket, 12)
    assert since.minute % 5 == 0 and since.second == 0 and since + 12 * bucket > now >= since + 11 * bucket
    points = stats.ng_trend(store, since, bucket, 12)
    assert len(points) == 12 and points[0].start == since
    ng = sql(line.store.path, "select count(*) from inspections where verdict = 'NG'")[0][0]
    if t0 >= since + 11 * bucket:  # every part in the newest bar (unless the run straddled a 5-minute edge)
        assert (points[-1].parts, points[-1].ng) == (14, ng)
    assert sum(p.parts for p in points) == 14 and sum(p.ng for p in points) == ng


def test_recent_rejects_point_at_saved_images(recorded, backend):
    line, _, store = recorded
    rejects = stats.recent_rejects(store, limit=4)
    assert len(rejects) == 4 and all(r.verdict != "OK" for r in rejects)
    assert [r.seq for r in rejects] == sorted((r.seq for r in rejects), reverse=True)
    if backend == "sqlite":
        assert all(r.image is not None and r.image.is_file() for r in rejects)
    else:  # the images stay at the station
        assert all(r.image is None for r in rejects)


def test_recent_events_newest_first(recorded):
    _, _, store = recorded
    events = stats.recent_events(store)
    assert [e.id for e in events] == sorted((e.id for e in events), reverse=True)
    assert any(e.kind == "run" for e in events)
