"""The pipelined runner: latency and throughput modes, stations of several cameras, and what the
inspection thread spends handing results to the writer (the figures themselves are bench/'s)."""

from __future__ import annotations

import sqlite3
import threading
import time

import cv2
import numpy as np
import pytest

from camera import TriggerMode
from camera.simulated import SimulatedCamera
from inspection.errors import ConfigError
from inspection.result import Verdict
from inspection.runtime.part import View, worst
from inspection.runtime.runner import Runner
from tests.fakes import FakeInspector, wait_for


class BatchInspector(FakeInspector):
    """The fake model with the batch API: records the size of every batch the network thread sends."""

    def __init__(self, network_s: float = 0.0, **kw) -> None:
        super().__init__(**kw)
        self.network_s = network_s
        self.sizes: list[int] = []
        self.threads: set[str] = set()

    def forward(self, inputs):
        self.sizes.append(len(inputs))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.network_s)
        return list(inputs)


def views(line, run_id):
    db = sqlite3.connect(line.store.path)
    return db.execute(
        "select seq, view, camera_id, frame_id, verdict, part_verdict from inspections "
        "where run_id=? order by seq, view",
        (run_id,),
    ).fetchall()


def test_latency_mode_sends_one_view_at_a_time(make_line):
    model = BatchInspector(network_s=0.02)
    line = make_line(inspector=model, mode="latency")
    runner = line.start(max_parts=20)
    assert runner.wait(60)
    s = line.stop()
    assert (s.parts, s.recorded, s.mode) == (20, 20, "latency")
    assert set(model.sizes) == {1} and model.threads == {"lepton-network"}


class HeldFirstCall(BatchInspector):
    """Holds the network's first call until `waiting` views wait behind it (no timing involved)."""

    def __init__(self, waiting: int, **kw) -> None:
        super().__init__(**kw)
        self.waiting, self.runner = waiting, None

    def forward(self, inputs):
        if not self.sizes:
            assert wait_for(lambda: self.runner is not None and len(self.runner._views[0]) >= self.waiting)
        return super().forward(inputs)


def test_throughput_mode_sends_the_waiting_views_together_and_records_every_part(make_line):
    model = HeldFirstCall(waiting=3)
    line = make_line(inspector=model, mode="throughput", max_batch=3)
    runner = model.runner = line.start(max_parts=24)
    assert runner.wait(60)
    s = line.stop()
    assert (s.parts, s.recorded, s.dropped, s.mode) == (24, 24, 0, "throughput")
    # The first call takes what waits when the network thread starts (1 to 3 views, as the threads
    # happen to start); the views that queued while it was held go in the next call, together.
    assert model.sizes[1] == 3 and sum(model.sizes) == 24 and max(model.sizes) == 3
    rows = views(line, s.run_id)
    assert [r[0] for r in rows] == list(range(1, 25))  # one row a part, in order


def test_a_micro_batch_larger_than_the_queue_drops_nothing_under_a_software_trigger(make_line):
    line = make_line(inspector=BatchInspector(network_s=0.01), mode="throughput", max_batch=8, queue_size=2)
    runner = line.start(max_parts=20)
    assert runner.wait(60)
    s = line.stop()
    assert (s.parts, s.recorded, s.dropped) == (20, 20, 0)


def test_a_failed_grab_on_one_camera_drops_that_part_and_the_next_parts_stay_paired(make_line, samples):
    second = SimulatedCamera(samples)
    line = make_line(cameras=[SimulatedCamera(samples), second], inspector=BatchInspector())
    second.open()
    second.fail_next(1)  # camera 1 loses its view of part 1
    runner = line.start(max_parts=10)
    assert runner.wait(60)
    s = line.stop()
    assert (s.parts, s.recorded, s.failed_grabs, s.dropped) == (10, 20, 1, 1)  # camera 0's view of that part
    rows = views(line, s.run_id)
    # each part: the same frame of both cameras
    assert all(a[3] == b[3] for a, b in zip(rows[::2], rows[1::2], strict=True)), rows


def test_both_views_of_a_part_are_kept_or_neither(make_line, samples):
    import dataclasses

    line = make_line(cameras=[SimulatedCamera(samples), SimulatedCamera(samples)], inspector=BatchInspector())
    line.setup = dataclasses.replace(line.setup, recipe=dataclasses.replace(line.recipe, save_ok_every=2))
    runner = line.start(max_parts=16)
    assert runner.wait(60)
    s = line.stop()
    kept = (
        sqlite3.connect(line.store.path)
        .execute(
            "select seq, count(image_path), min(part_verdict) from inspections "
            "where run_id=? group by seq order by seq",
            (s.run_id,),
        )
        .fetchall()
    )
    assert {n for _, n, _ in kept} <= {0, 2}  # never one view of a part without the other
    ok_parts = [n for _, n, verdict in kept if verdict == "OK"]
    assert (
        ok_parts and all(n == 2 for n in ok_parts[::2]) and all(n == 0 for n in ok_parts[1::2])
    )  # one good part in two
    assert all(n == 2 for _, n, verdict in kept if verdict != "OK")


def test_a_station_of_two_cameras_records_both_views_of_each_part_with_the_worst_verdict(make_line, samples, tmp_path):
    white = tmp_path / "white"
    white.mkdir()
    for k in range(3):
        cv2.imwrite(str(white / f"{k}.png"), np.full((60, 80), 250, np.uint8))  # the fake model says NG to bright parts
    line = make_line(
        cameras=[SimulatedCamera(samples), SimulatedCamera(white)],
        inspector=BatchInspector(),
        mode="throughput",
        max_batch=4,
    )
    runner = line.start(max_parts=12)
    assert runner.wait(60)
    s = line.stop()
    assert (s.parts, s.recorded, s.cameras, s.ng, s.ok, s.review) == (12, 24, 2, 12, 0, 0)
    rows = views(line, s.run_id)
    assert [(seq, view) for seq, view, *_ in rows] == [(p, v) for p in range(1, 13) for v in (0, 1)]
    assert {cam for _, view, cam, *_ in rows if view == 0} == {f"sim:{samples.name}"}
    assert {cam for _, view, cam, *_ in rows if view == 1} == {"sim:white"}
    assert {verdict for _, view, _, _, verdict, _ in rows if view == 1} == {"NG"}
    assert {verdict for _, view, _, _, verdict, _ in rows if view == 0} >= {"OK"}  # the first camera's views differ...
    assert {part for *_, part in rows} == {"NG"}  # ...the part is NG by its worst view
    # each part: the same frame of both cameras
    assert all(a[3] == b[3] for a, b in zip(rows[::2], rows[1::2], strict=True))


def test_one_camera_rows_say_view_0_and_their_own_verdict_as_the_parts(make_line):
    line = make_line()
    runner = line.start(max_parts=10)
    assert runner.wait(30)
    s = line.stop()
    assert all(view == 0 and part == verdict for _, view, _, _, verdict, part in views(line, s.run_id))


def test_a_free_running_station_of_two_cameras_is_refused_before_a_run_starts(make_line, samples):
    line = make_line(cameras=[SimulatedCamera(samples), SimulatedCamera(samples)], trigger=TriggerMode.FREE_RUN)
    with pytest.raises(ConfigError, match="2 cameras needs a software or hardware trigger"):
        line.start(max_parts=3)
    assert sqlite3.connect(line.store.path).execute("select count(*) from runs").fetchone() == (0,)


def test_views_whose_part_another_camera_has_passed_are_dropped_never_paired(make_line, samples):
    line = make_line(cameras=[SimulatedCamera(samples), SimulatedCamera(samples)], queue_size=2)
    runner = Runner(line.cameras, line.inspector, line.recipe, writer=_NoWriter(), config=line.config, run_id=0)

    def view(name: str) -> View:
        return View(frame=name, t0=0.0, data=name, error="", t_prepared=0.0)  # (the frame is not looked at here)

    for name in ("a0", "a1", "a2"):  # camera 0 runs ahead: its full queue drops its view of part 0
        runner._accept(0, view(name))
    runner._accept(1, view("b0"))  # camera 1's view of part 0 has no partner left
    runner._accept(1, view("b1"))
    assert [[v.data for v in part] for part in runner._next_parts()] == [["a1", "b1"]]
    runner._accept(1, view("b2"))
    assert [[v.data for v in part] for part in runner._next_parts()] == [["a2", "b2"]]
    assert runner.status().dropped == 2  # a0 from the full queue, b0 unpaired


class _NoWriter:
    on_error = None
    recorded = unwritten = 0
    images_missing = (0, "")
    commit_ms_per_row = 0.0


def test_the_worst_verdict_of_a_parts_views():
    assert worst([Verdict.OK, Verdict.OK]) is Verdict.OK
    assert worst([Verdict.OK, Verdict.REVIEW]) is Verdict.REVIEW
    assert worst([Verdict.REVIEW, Verdict.NG, Verdict.OK]) is Verdict.NG


def test_a_batch_the_network_fails_on_is_recorded_as_review_and_the_line_goes_on(make_line):
    class Failing(BatchInspector):
        def forward(self, inputs):
            if len(self.sizes) == 2:
                self.sizes.append(len(inputs))
                raise RuntimeError("injected network failure")
            return super().forward(inputs)

    line = make_line(inspector=Failing())
    runner = line.start(max_parts=6)
    assert runner.wait(30)
    s = line.stop()
    rows = (
        sqlite3.connect(line.store.path)
        .execute("select seq, verdict, error from inspections where run_id=? order by seq", (s.run_id,))
        .fetchall()
    )
    assert (s.parts, s.recorded) == (6, 6)
    assert rows[2][1:] == ("REVIEW", "Model failed: injected network failure")
    assert all(err is None for _, _, err in rows[:2] + rows[3:])


def test_the_hand_off_to_the_writer_and_the_commits_are_measured(make_line):
    line = make_line()
    runner = line.start(max_parts=10)
    assert runner.wait(30)
    s = line.stop()
    assert s.hand_off_ms_per_part > 0 and s.commit_ms_per_row > 0


def test_counters_shifts_and_reports_count_parts_not_views(make_line, samples, tmp_path):
    import datetime as dt

    from inspection.reports.figures import Window, gather, list_shifts
    from inspection.reports.stats import counters

    white = tmp_path / "white"
    white.mkdir()
    cv2.imwrite(str(white / "0.png"), np.full((60, 80), 250, np.uint8))  # NG to the fake model
    line = make_line(cameras=[SimulatedCamera(samples), SimulatedCamera(white)], inspector=BatchInspector())
    runner = line.start(max_parts=8)
    assert runner.wait(60)
    s = line.stop()
    assert (s.parts, s.recorded, s.ng) == (8, 16, 8)
    c = counters(line.store, dt.datetime(2000, 1, 1))
    assert (c.parts, c.ng, c.ok, c.review) == (8, 8, 0, 0)
    shifts = list_shifts(line.store)
    assert sum(x["inspected"] for x in shifts) == 8 and sum(x["ng"] for x in shifts) == 8
    data = gather(line.store, Window(dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1), "all"), dt.UTC)
    assert (data.inspected, data.ng, data.ok) == (8, 8, 0)
