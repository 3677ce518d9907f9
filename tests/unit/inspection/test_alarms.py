"""Alarms on a line (simulated camera, fake model, a real SQLite file): raised once per onset,
recorded in the event log, active until acknowledged, and still active after a restart."""

from __future__ import annotations

import dataclasses
import sqlite3
import time

import numpy as np

from camera import TriggerMode
from camera.simulated import SimulatedCamera
from inspection.record.opening import open_record
from inspection.result import Verdict
from inspection.runtime.alarms import AlarmMonitor
from inspection.runtime.status import RunnerState
from inspection.settings.config import AlarmConfig
from models.base import Thresholds
from tests.fakes import FakeInspector

ALL_NG = Thresholds(0.0, 1.0, 1e9)  # every part scores above 1: NG (and no defect pixels)


def alarm_rows(path):
    con = sqlite3.connect(path)
    try:
        return con.execute("select id, kind, acknowledged_at from events where level = 'alarm' order by id").fetchall()
    finally:
        con.close()


def test_consecutive_ng_raises_one_alarm_recorded_until_acknowledged(make_line):
    line = make_line(inspector=FakeInspector(thresholds=ALL_NG))
    line.alarms.interval_s = 0.05
    runner = line.start(max_parts=12)
    assert runner.wait(30)
    line.alarms.check()
    line.stop()
    line.alarms.check()
    kinds = [a.kind for a in line.alarms.active()]
    assert kinds.count("consecutive_ng") == 1  # 12 NG in a row: one alarm, not one per part
    assert "ng_rate" not in kinds  # the rate needs a full window of 50 parts
    rows = alarm_rows(line.store.path)
    assert [k for _, k, _ in rows].count("consecutive_ng") == 1
    alarm = next(a for a in line.alarms.active() if a.kind == "consecutive_ng")
    assert "NG parts in a row (limit 5)" in alarm.message
    line.alarms.acknowledge([alarm.event_id])
    assert alarm.event_id not in [a.event_id for a in line.alarms.active()]
    line.alarms.check()  # writes the acknowledgement
    assert dict((i, ack) for i, _, ack in alarm_rows(line.store.path))[alarm.event_id] is not None


def test_ok_parts_raise_no_alarm(make_line):
    line = make_line()
    runner = line.start(max_parts=10)
    assert runner.wait(30)
    line.stop()
    line.alarms.check()
    assert [a.kind for a in line.alarms.active()] == []


def test_each_pulled_cable_is_a_camera_alarm_and_its_return_is_logged(make_line, samples):
    camera = SimulatedCamera(samples)
    line = make_line(camera=camera)
    line.alarms.interval_s = 3600  # (after its first check or two) only the explicit checks below
    runner = line.start()

    def until(predicate):
        deadline = time.monotonic() + 20
        while not predicate() and time.monotonic() < deadline:
            time.sleep(0.01)
        return predicate()

    for pull in (1, 2):
        camera.disconnect()
        assert until(lambda pull=pull: runner.status().camera_losses == pull)
        camera.plug_in()
        assert until(lambda pull=pull: runner.status().reconnects == pull and runner.state is RunnerState.RUNNING)
        line.alarms.check()  # lost and back between two checks: still an alarm, and the return logged
        active = line.alarms.active()
        assert [a.kind for a in active] == ["camera"] * pull and "disconnected" in active[-1].message
        events = (
            sqlite3.connect(line.store.path)
            .execute("select level, message from events where kind='camera' order by id")
            .fetchall()
        )
        assert [level for level, _ in events] == ["alarm", "info"] * pull
        assert "reconnected" in events[-1][1] and "inspection resumed" in events[-1][1]
    line.stop()


def test_model_failures_are_an_alarm(make_line):
    line = make_line(inspector=FakeInspector(fail_every=3))
    runner = line.start(max_parts=6)
    assert runner.wait(30)
    line.alarms.check()
    line.stop()
    (alarm,) = line.alarms.active()
    assert alarm.kind == "model" and "injected model failure" in alarm.message


def test_dropped_frames_are_an_alarm(make_line):
    line = make_line(inspector=FakeInspector(delay_s=0.05), trigger=TriggerMode.FREE_RUN, queue_size=2)
    runner = line.start(max_parts=10)
    assert runner.wait(30)
    line.alarms.check()
    status = line.stop()
    assert status.dropped > 0
    (alarm,) = line.alarms.active()
    assert alarm.kind == "dropped" and "not inspected" in alarm.message


def test_low_disk_is_an_alarm(make_line):
    line = make_line()
    line.alarms.config = dataclasses.replace(line.alarms.config, min_free_disk_mb=10**12)  # more than any disk
    line.alarms.check()
    (alarm,) = line.alarms.active()
    assert alarm.kind == "disk" and "Disk space low" in alarm.message


def test_unacknowledged_alarms_survive_a_restart(make_line, tmp_path):
    line = make_line(inspector=FakeInspector(thresholds=ALL_NG))
    runner = line.start(max_parts=6)
    assert runner.wait(30)
    line.alarms.check()
    line.close()
    store = open_record(tmp_path / "runner.db")
    try:
        monitor = AlarmMonitor(store, AlarmConfig(), lambda: None)
        assert [a.kind for a in monitor.active()] == ["consecutive_ng"]
        monitor.acknowledge()
        monitor.close()
        assert AlarmMonitor(store, AlarmConfig(), lambda: None).active() == ()
    finally:
        store.close()


def test_a_streak_that_ends_between_two_checks_is_still_an_alarm(make_line):
    """The monitor checks every 0.5 s; a streak of NG parts that an OK part ends before the next
    check must not slip through."""
    line = make_line()
    line.alarms.interval_s = 3600  # only the explicit checks below
    line.alarms.check()
    verdicts = [Verdict.NG] * 5 + [Verdict.OK]
    for v in verdicts:
        line.alarms.on_result(_result(v))
    line.alarms.check()
    assert [a.kind for a in line.alarms.active()] == ["consecutive_ng"]


def test_an_alarm_that_cannot_be_recorded_is_still_shown(make_line, monkeypatch):
    line = make_line()
    line.alarms.config = dataclasses.replace(line.alarms.config, min_free_disk_mb=10**12)

    def full(*_a, **_k):
        raise OSError("No space left on device")

    monkeypatch.setattr(line.store, "session", full)
    line.alarms.check()
    (alarm,) = line.alarms.active()
    assert alarm.kind == "disk" and alarm.event_id < 0 and "Not recorded in the event log" in alarm.message
    line.alarms.acknowledge([alarm.event_id])
    assert line.alarms.active() == ()


def test_acknowledging_what_was_shown_leaves_a_newer_alarm_active(make_line):
    line = make_line()
    line.alarms.interval_s = 3600
    for _ in range(5):
        line.alarms.on_result(_result(Verdict.NG))
    line.alarms.check()
    shown = [a.event_id for a in line.alarms.active()]
    line.alarms.config = dataclasses.replace(line.alarms.config, min_free_disk_mb=10**12)
    line.alarms.check()  # a disk alarm comes after the operator looked
    line.alarms.acknowledge(shown)
    assert [a.kind for a in line.alarms.active()] == ["disk"]


def _result(verdict):
    from inspection.result import InspectionResult, Timing

    z = np.zeros((4, 4), np.uint8)
    return InspectionResult(
        part_id="p",
        seq=1,
        run_id=1,
        timestamp=0.0,
        camera_id="c",
        frame_id=1,
        recipe="r",
        model_name="m",
        model_version="1",
        model_sha256="s",
        score=1.0,
        verdict=verdict,
        classes=(),
        image=z,
        defect_mask=z.astype(bool),
        anomaly_map=z.astype(np.float32),
        timing=Timing(0, 0, 0, 0, 0, 0),
    )
