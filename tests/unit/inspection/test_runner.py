"""The runner with the simulated camera and a fake model: counts, faults, drops, listeners."""

from __future__ import annotations

import sqlite3
import threading
import time

from camera import CameraError, TriggerMode
from camera.simulated import SimulatedCamera
from inspection.runtime.status import RunnerState
from tests.fakes import FakeInspector, wait_for


def rows(line, run_id):
    db = sqlite3.connect(line.store.path)
    return db.execute(
        "select count(*), sum(verdict='OK'), sum(verdict='NG'), sum(verdict='REVIEW') from inspections where run_id=?",
        (run_id,),
    ).fetchone()


def test_exactly_max_parts_are_inspected_and_recorded(make_line):
    line = make_line()
    runner = line.start(max_parts=25)
    assert runner.wait(30)
    s = line.stop()
    assert (s.parts, s.recorded, s.dropped, s.state) == (25, 25, 0, RunnerState.IDLE)
    assert rows(line, s.run_id) == (25, s.ok, s.ng, s.review)
    assert s.ok > 0 and s.ng + s.review > 0  # the samples hold both bright and dark frames
    assert 0 < s.latency_ms_p50 <= s.latency_ms_p99


def test_failed_grabs_are_counted_never_inspected(make_line, samples):
    cam = SimulatedCamera(samples)
    line = make_line(camera=cam)
    cam.open()
    cam.fail_next(4)
    runner = line.start(max_parts=10)
    assert runner.wait(30)
    s = line.stop()
    assert (s.parts, s.failed_grabs, s.recorded) == (10, 4, 10)


class GatedInspector(FakeInspector):
    """The fake model, held at each part while `gate` is clear."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.gate = threading.Event()
        self.gate.set()

    def infer(self, batch, image_shape):
        self.gate.wait(30)
        return super().infer(batch, image_shape)


def camera_events(line):
    db = sqlite3.connect(line.store.path)
    return db.execute("select level, message from events where kind='camera' order by id").fetchall()


def test_pulled_cable_faults_then_plugged_back_resumes_with_nothing_recorded_twice(make_line, samples):
    # Free-running faster than the model: frames wait in the queue when the cable is pulled.
    cam = SimulatedCamera(samples)
    model = GatedInspector(delay_s=0.02)
    line = make_line(camera=cam, inspector=model, trigger=TriggerMode.FREE_RUN, frame_rate=100.0)
    seen = []
    line.add_result_listener(lambda r: seen.append(r.frame_id))
    runner = line.start()
    assert wait_for(lambda: runner.status().parts >= 5)
    model.gate.clear()  # the model holds the next part: frames wait in the queue
    cam.disconnect()
    assert wait_for(lambda: runner.state is RunnerState.FAULTED)
    s = runner.status()
    assert (s.fault, s.reconnecting, s.camera_losses, s.reconnects) == (
        "camera",
        True,
        1,
        0,
    ) and "disconnected" in s.message
    at_fault = s.parts
    model.gate.set()
    assert wait_for(lambda: runner.status().parts > at_fault)  # the frames queued before the pull are still inspected
    line.alarms.check()
    assert [a.kind for a in line.alarms.active()] == ["camera"]
    assert camera_events(line)[0][0] == "alarm" and "disconnected" in camera_events(line)[0][1]
    assert not runner.wait(1.0)  # unplugged: the run goes on, the camera is tried again and again
    assert runner.state is RunnerState.FAULTED and runner.status().reconnecting
    held = runner.status().parts
    cam.plug_in()
    assert wait_for(lambda: runner.state is RunnerState.RUNNING)
    s = runner.status()
    assert (s.fault, s.reconnecting, s.camera_losses, s.reconnects) == ("", False, 1, 1)
    assert "reconnected" in s.message and "inspection resumed" in s.message
    assert wait_for(lambda: runner.status().parts >= held + 5)  # inspection goes on
    line.alarms.check()
    s = line.stop()
    assert s.state is RunnerState.IDLE and s.reconnects == 1
    db = sqlite3.connect(line.store.path)
    n, parts, frames = db.execute(
        "select count(*), count(distinct part_id), count(distinct frame_id) from inspections"
    ).fetchone()
    assert n == parts == frames == s.parts == s.recorded  # one row per part, no frame twice
    assert seen == sorted(seen) and len(set(seen)) == len(seen)  # frame ids go on across the reconnection
    assert db.execute("select count(*), min(end_state) from runs").fetchone() == (1, "stopped")
    assert [level for level, _ in camera_events(line)] == ["alarm", "info"]
    assert "reconnected" in camera_events(line)[1][1]


def pulled_mid_run(make_line, samples):
    """A line on the simulated camera that has inspected a few parts, then lost its camera (faulted)."""
    cam = SimulatedCamera(samples)
    line = make_line(camera=cam)
    runner = line.start()
    assert wait_for(lambda: runner.status().parts >= 3)
    cam.disconnect()
    assert wait_for(lambda: runner.state is RunnerState.FAULTED)
    return cam, line, runner


def test_pulled_cable_never_returned_stop_returns_and_the_run_ends_faulted(make_line, samples):
    _, line, runner = pulled_mid_run(make_line, samples)
    assert not runner.wait(1.0)  # still trying
    s = line.stop()
    assert s.state is RunnerState.FAULTED and s.fault == "camera" and not s.reconnecting
    assert "was not back when the line was stopped" in s.message
    assert rows(line, s.run_id)[0] == s.parts == s.recorded >= 3
    end = (
        sqlite3.connect(line.store.path)
        .execute("select end_state, end_message from runs where id=?", (s.run_id,))
        .fetchone()
    )
    assert end[0] == "faulted" and "disconnected" in end[1]


def test_pause_during_the_fault_comes_back_paused(make_line, samples):
    cam, line, runner = pulled_mid_run(make_line, samples)
    runner.pause()
    assert runner.state is RunnerState.FAULTED  # still faulted, but it will come back paused
    cam.plug_in()
    assert wait_for(lambda: runner.state is RunnerState.PAUSED)
    s = runner.status()
    assert s.reconnects == 1 and "paused" in s.message
    held = s.parts
    time.sleep(0.5)
    assert runner.status().parts == held  # paused: nothing grabbed
    runner.resume()
    assert runner.state is RunnerState.RUNNING
    assert wait_for(lambda: runner.status().parts >= held + 3)
    s = line.stop()
    assert s.state is RunnerState.IDLE and rows(line, s.run_id)[0] == s.parts == s.recorded


def test_a_camera_lost_while_paused_comes_back_paused(make_line, samples):
    cam = SimulatedCamera(samples)
    line = make_line(camera=cam)
    runner = line.start()
    assert wait_for(lambda: runner.status().parts >= 3)
    runner.pause()
    cam.disconnect()
    assert wait_for(lambda: runner.state is RunnerState.FAULTED)  # seen while paused, not only at the next grab
    cam.plug_in()
    assert wait_for(lambda: runner.state is RunnerState.PAUSED)
    runner.resume()
    held = runner.status().parts
    assert wait_for(lambda: runner.status().parts >= held + 3)
    assert line.stop().reconnects == 1


def test_a_camera_back_that_refuses_the_recipe_faults_for_good(make_line, samples, monkeypatch):
    cam, line, runner = pulled_mid_run(make_line, samples)

    def refuse(settings):
        raise CameraError(f"Camera {cam.camera_id} refused the settings: injected.")

    monkeypatch.setattr(cam, "configure", refuse)
    cam.plug_in()
    assert runner.wait(20)  # the run ends
    s = line.stop()
    assert s.state is RunnerState.FAULTED and not s.reconnecting and "refused the settings" in s.message
    assert s.reconnects == 0 and rows(line, s.run_id)[0] == s.parts


def test_free_run_overflow_drops_oldest_and_counts_it(make_line):
    line = make_line(inspector=FakeInspector(delay_s=0.05), trigger=TriggerMode.FREE_RUN, queue_size=2)
    seen = []
    line.add_result_listener(lambda r: seen.append(r.frame_id))
    runner = line.start(max_parts=15)
    assert runner.wait(30)
    s = line.stop()
    assert s.parts == 15 == rows(line, s.run_id)[0]
    assert s.dropped > 0  # 200 fps into a 20 parts/s model
    assert seen == sorted(seen)  # the oldest frames went; the rest were inspected in order
    # Every frame the camera handed over was either inspected, dropped, or still waiting at the stop.
    assert seen[-1] - seen[0] + 1 <= s.parts + s.dropped


def test_a_model_failure_is_recorded_as_review_with_the_error(make_line):
    line = make_line(inspector=FakeInspector(fail_every=3))
    runner = line.start(max_parts=9)
    assert runner.wait(30)
    s = line.stop()
    db = sqlite3.connect(line.store.path)
    errors = db.execute("select verdict, score, error from inspections where error is not null").fetchall()
    assert len(errors) == 3 and all(v == "REVIEW" and score is None and "injected" in e for v, score, e in errors)
    assert s.parts == 9


def test_a_failing_listener_does_not_stop_the_line(make_line):
    line = make_line()
    seen = []
    line.add_result_listener(lambda r: (_ for _ in ()).throw(ValueError("bad listener")))
    line.add_result_listener(seen.append)
    runner = line.start(max_parts=6)
    assert runner.wait(30)
    line.stop()
    assert [r.seq for r in seen] == [1, 2, 3, 4, 5, 6]


def test_rejects_are_saved_as_png_with_masks_and_ok_parts_sampled(make_line):
    line = make_line()
    runner = line.start(max_parts=24)
    assert runner.wait(30)
    s = line.stop()
    db = sqlite3.connect(line.store.path)
    base = line.store.path.parent
    for verdict, image, mask in db.execute("select verdict, image_path, mask_path from inspections"):
        if verdict != "OK":
            assert image and (base / image).is_file() and image.endswith(".png")
        if mask:
            assert (base / mask).is_file()
    ok_saved = db.execute("select count(image_path) from inspections where verdict='OK'").fetchone()[0]
    assert 0 < ok_saved < s.ok  # one in save_ok_every (10)


def test_all_frames_failing_faults_the_run(make_line, samples):
    cam = SimulatedCamera(samples)
    line = make_line(camera=cam)
    cam.open()
    cam.fail_next(10_000)
    runner = line.start()
    assert runner.wait(20)
    s = line.stop()
    assert s.state is RunnerState.FAULTED and "25 frames in a row failed" in s.message
    assert s.parts == 0 and s.failed_grabs == 25


def test_a_database_that_cannot_be_written_faults_the_line_and_stop_returns(make_line, tmp_path):
    line = make_line()
    runner = line.start()
    deadline = time.monotonic() + 10
    while runner.status().recorded < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    # The disk "fills": every later transaction fails (the run's end cannot be written either).
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    def refuse(*_args, **_kw):
        raise OSError(28, "No space left on device")

    event.listen(Session, "before_commit", refuse)
    try:
        assert runner.wait(30)
        s = stop_or_hang(line)  # (it once waited out three tries for every batch still queued)
    finally:
        event.remove(Session, "before_commit", refuse)
    assert s.state is RunnerState.FAULTED and "cannot be recorded" in s.message
    assert s.unwritten > 0 and s.recorded + s.unwritten == s.parts
    assert rows(line, s.run_id)[0] == s.recorded


def stop_or_hang(line):
    """line.stop() from another thread; a stop that has not returned after two minutes is a hang (a
    guard against deadlock, not a timing: pytest-timeout would also end it, without saying where)."""
    out = []
    t = threading.Thread(target=lambda: out.append(line.stop()), daemon=True)
    t.start()
    t.join(120)
    assert out, "line.stop() hung"
    return out[0]


def test_images_that_cannot_be_saved_still_get_their_rows_and_the_line_goes_on(make_line):
    line = make_line()
    line.store.images_dir.parent.mkdir(parents=True, exist_ok=True)
    line.store.images_dir.write_text("a file where the image folder should be")
    runner = line.start(max_parts=12)
    assert runner.wait(30)
    s = line.stop()
    assert s.state is RunnerState.IDLE and s.parts == 12
    db = sqlite3.connect(line.store.path)
    statuses = dict(
        db.execute("select verdict, count(*) from inspections where image_status = 'missing' group by verdict")
    )
    kept = db.execute("select count(*) from inspections where verdict != 'OK' or image_path is not null").fetchone()[0]
    assert rows(line, s.run_id)[0] == s.recorded == s.parts
    assert sum(statuses.values()) == kept >= 1  # every image that was to be kept is marked missing
    assert line.runner is None and runner.writer.images_missing[0] == kept


def test_latency_counts_from_the_frame_not_the_wait_for_it(make_line, samples):
    line = make_line(trigger=TriggerMode.FREE_RUN, frame_rate=4.0)
    runner = line.start(max_parts=4)
    assert runner.wait(30)
    s = line.stop()
    db = sqlite3.connect(line.store.path)
    timings = db.execute(
        "select t_grab_ms, t_queue_ms + t_preprocess_ms + t_infer_ms + t_decide_ms, latency_ms from inspections"
    ).fetchall()
    assert len(timings) == s.parts == 4
    # A free-running frame's latency starts when it arrived: no time waiting for it (grab) is counted.
    assert all(grab == 0.0 and abs(total - stages) < 1e-6 for grab, stages, total in timings), timings


def test_pause_stops_grabbing_resume_goes_on_and_stop_while_paused_returns(make_line):
    line = make_line(inspector=FakeInspector(delay_s=0.01))
    runner = line.start()
    deadline = time.monotonic() + 30
    while runner.status().parts < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.pause()
    assert runner.state is RunnerState.PAUSED
    time.sleep(0.3)  # a part grabbed before the pause is still inspected
    held = runner.status().parts
    time.sleep(0.5)
    assert runner.status().parts == held
    runner.resume()
    while runner.status().parts < held + 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runner.status().parts >= held + 3 and runner.state is RunnerState.RUNNING
    runner.pause()
    status = stop_or_hang(line)
    assert status.state is RunnerState.IDLE
    assert rows(line, status.run_id)[0] == status.parts == status.recorded
    runner.pause()  # after a stop: nothing happens
    assert runner.state is RunnerState.IDLE
