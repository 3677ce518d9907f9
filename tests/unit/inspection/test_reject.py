"""The reject gate on the simulated camera: which parts pulse, misses, overlapping pulses, encoder
mode, the [io]/[reject] tables and the reject alarm. Times are only checked where the logic
guarantees them (a pulse never starts before its gate, never lasts less than pulse_ms)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from camera.base import IoSettings
from camera.errors import CameraError
from camera.simulated import SimulatedCamera
from inspection.errors import ConfigError
from inspection.record.opening import open_record
from inspection.result import InspectionResult, Timing, Verdict
from inspection.runtime.alarms import AlarmMonitor
from inspection.runtime.reject_gate import RejectGate, RejectStats
from inspection.settings.config import AlarmConfig, load_config
from inspection.settings.io import RejectConfig, io_settings
from tests.fakes import wait_for


def part(
    seq: int, verdict: Verdict, t0: float, *, view: int = 0, part_verdict: Verdict | None = None, run_id: int = 1
) -> InspectionResult:
    """A result imaged at `t0` (perf_counter)."""
    total_ms = (time.perf_counter() - t0) * 1000
    return InspectionResult(
        part_id=f"p{seq}",
        seq=seq,
        run_id=run_id,
        timestamp=time.time(),
        camera_id="sim",
        frame_id=seq,
        recipe="r",
        model_name="m",
        model_version="1",
        model_sha256="0",
        score=0.0,
        verdict=verdict,
        classes=(),
        image=np.zeros((2, 2), np.uint8),
        defect_mask=np.zeros((2, 2), bool),
        anomaly_map=np.zeros((2, 2), np.float32),
        timing=Timing(0.0, 0.0, 0.0, 0.0, 0.0, total_ms),
        view=view,
        part_verdict=part_verdict,
        t0=t0,
    )


@pytest.fixture
def camera(samples):
    cam = SimulatedCamera(samples)
    cam.open()
    cam.configure_io(IoSettings(reject_line="Line2"))
    yield cam
    cam.close()


@pytest.fixture
def make_gate(camera):
    gates = []

    def make(cam=None, **config):
        # (gates a second away unless a test is about timing: a busy machine never makes them misses)
        gate = RejectGate(cam or camera, RejectConfig(enabled=True, **{"delay_ms": 1000.0, "pulse_ms": 30.0, **config}))
        gates.append(gate)
        gate.start()
        return gate

    yield make
    for gate in gates:
        gate.close()


def pulses(cam: SimulatedCamera) -> list[tuple[float, float]]:
    """(on, off) times of the output's pulses."""
    out, on = [], None
    for t, value in cam.outputs:
        if value and on is None:
            on = t
        elif not value and on is not None:
            out.append((on, t))
            on = None
    return out


def test_ng_pulses_once_at_its_gate_and_ok_never(camera, make_gate):
    gate = make_gate()
    t0 = time.perf_counter()
    gate.on_result(part(1, Verdict.OK, t0))
    gate.on_result(part(2, Verdict.NG, t0 + 0.1))
    assert wait_for(lambda: gate.stats().pulses == 1 and len(pulses(camera)) == 1)
    time.sleep(0.4)  # the OK part's gate is long past: still one pulse
    [(on, off)] = pulses(camera)
    assert on >= t0 + 0.1 + 1.0  # never before the NG part reaches the gate
    assert off - on >= 0.030  # at least pulse_ms
    s = gate.stats()
    assert (s.pulses, s.misses, s.merged, s.output_errors) == (1, 0, 0, 0)
    gate.close()
    assert camera.outputs[-1][1] is False


def test_a_verdict_too_late_for_the_gate_is_a_miss_and_never_pulsed(camera, make_gate):
    gate = make_gate()
    now = time.perf_counter()
    gate.on_result(part(7, Verdict.NG, now - 10.0))  # imaged 10 s ago: long past its gate
    gate.on_result(part(8, Verdict.OK, now - 10.0))
    assert wait_for(lambda: gate.stats().misses == 2)
    time.sleep(0.3)
    assert pulses(camera) == [] and all(value is False for _, value in camera.outputs)
    s = gate.stats()
    assert (s.misses, s.missed_rejects, s.pulses) == (2, 1, 0)
    assert s.last_miss.startswith("Part 8 (OK) reached the reject gate before its verdict (late by ")
    assert s.last_miss.endswith("2 misses this run.")


def test_within_the_ready_margin_is_a_miss(camera, make_gate):
    gate = make_gate(delay_ms=1000.0, ready_margin_ms=900.0)
    gate.on_result(part(1, Verdict.NG, time.perf_counter() - 0.2))  # 800 ms to go, 900 needed
    assert wait_for(lambda: gate.stats().misses == 1)
    assert gate.stats().pulses == 0


@pytest.mark.parametrize("reject_review", [True, False])
def test_review_is_rejected_as_configured(camera, make_gate, reject_review):
    gate = make_gate(reject_review=reject_review)
    gate.on_result(part(1, Verdict.REVIEW, time.perf_counter()))
    gate.on_result(part(2, Verdict.NG, time.perf_counter() + 0.3))  # a marker after it
    assert wait_for(lambda: len(pulses(camera)) >= 1 + reject_review)
    time.sleep(0.1)
    assert len(pulses(camera)) == 1 + reject_review


def test_the_part_verdict_counts_and_only_the_first_view(camera, make_gate):
    gate = make_gate()
    t0 = time.perf_counter()
    gate.on_result(part(1, Verdict.OK, t0, part_verdict=Verdict.NG))  # another view found the defect
    gate.on_result(part(1, Verdict.NG, t0, view=1, part_verdict=Verdict.NG))  # the same part: not twice
    assert wait_for(lambda: gate.stats().pulses == 1)
    time.sleep(0.3)
    assert len(pulses(camera)) == 1


def test_overlapping_pulses_merge_into_one_covering_both(camera, make_gate):
    gate = make_gate(pulse_ms=150.0)
    t0 = time.perf_counter()
    gate.on_result(part(1, Verdict.NG, t0))
    gate.on_result(part(2, Verdict.NG, t0 + 0.05))  # 50 ms behind, within the first pulse
    assert wait_for(lambda: gate.stats().pulses == 2 and len(pulses(camera)) == 1)
    time.sleep(0.3)
    [(on, off)] = pulses(camera)
    assert off >= t0 + 0.05 + 1.0 + 0.15  # the second part gets its full pulse_ms
    assert gate.stats().merged == 1


def test_a_new_run_counts_from_zero(camera, make_gate):
    gate = make_gate()
    gate.on_result(part(1, Verdict.NG, time.perf_counter() - 10, run_id=1))
    assert wait_for(lambda: gate.stats().misses == 1)
    gate.on_result(part(1, Verdict.OK, time.perf_counter(), run_id=2))
    assert wait_for(lambda: gate.stats().run_id == 2)
    assert gate.stats().misses == 0


def test_a_failing_output_is_counted_and_switched_off_again(camera, make_gate):
    gate = make_gate()
    camera.fail_outputs(1)  # the pulse's start fails
    gate.on_result(part(1, Verdict.NG, time.perf_counter()))
    assert wait_for(lambda: gate.stats().output_errors == 1 and len(camera.outputs) >= 2)
    assert [value for _, value in camera.outputs] == [False, False]
    assert "did not accept" in gate.stats().last_error


def test_start_needs_the_output_line(samples):
    cam = SimulatedCamera(samples)
    cam.open()
    with pytest.raises(CameraError, match="has no reject output configured"):
        RejectGate(cam, RejectConfig(enabled=True)).start()


# -- encoder mode ------------------------------------------------------------------------------
def encoder_camera(samples, speed: float) -> SimulatedCamera:
    cam = SimulatedCamera(samples, encoder_counts_per_s=speed)
    cam.open()
    cam.configure_io(IoSettings(reject_line="Line2"))
    return cam


def test_encoder_mode_pulses_when_the_belt_has_moved_the_counts(samples, make_gate):
    cam = encoder_camera(samples, 10_000.0)
    gate = make_gate(cam, after="encoder", encoder_counts=10_000)  # 1 s at this speed
    t0 = time.perf_counter()
    gate.on_result(part(1, Verdict.NG, t0))
    gate.on_result(part(2, Verdict.OK, t0))
    assert wait_for(lambda: len(pulses(cam)) == 1)
    [(on, _)] = pulses(cam)
    assert on >= t0 + 1.0 - 0.001  # not before the belt has moved 10,000 counts (one count of rounding)
    assert gate.stats().misses == 0


def test_encoder_mode_waits_for_a_stopped_belt_and_knows_a_late_part(samples, make_gate):
    cam = encoder_camera(samples, 0.0)
    gate = make_gate(cam, after="encoder", encoder_counts=1000)
    gate.on_result(part(1, Verdict.NG, time.perf_counter()))
    time.sleep(0.3)
    assert pulses(cam) == [] and gate.stats().misses == 0  # a belt that stands still is never late
    cam.set_encoder_speed(20_000.0)
    assert wait_for(lambda: len(pulses(cam)) == 1)
    time.sleep(0.2)
    gate.on_result(part(2, Verdict.NG, time.perf_counter() - 0.1))  # 2000 counts ago: past its gate
    assert wait_for(lambda: gate.stats().misses == 1)
    assert "late by" in gate.stats().last_miss and len(pulses(cam)) == 1


def test_encoder_mode_needs_an_encoder(samples):
    cam = SimulatedCamera(samples, has_encoder=False)
    cam.open()
    cam.configure_io(IoSettings(reject_line="Line2"))
    with pytest.raises(CameraError, match="has no encoder"):
        RejectGate(cam, RejectConfig(enabled=True, after="encoder")).start()


# -- config -------------------------------------------------------------------------------------
def test_defaults_and_io_settings():
    c = load_config()
    assert c.reject.enabled is False and c.reject.after == "time" and c.reject.reject_review is True
    assert io_settings(c.io, c.reject) == IoSettings()  # no output line while the reject is off
    on = io_settings(c.io, dataclasses.replace(c.reject, enabled=True))
    assert (on.reject_line, on.reject_output) == ("Line2", "UserOutput1")


@pytest.mark.parametrize(
    "toml, match",
    [
        ("[reject]\ndelay_ms = -1.0", r"^reject\.delay_ms in config .* must be a time in milliseconds above 0"),
        ('[reject]\nafter = "belt"', r"^reject\.after in config .* must be one of 'time', 'encoder', not 'belt'\.$"),
        ('[reject]\nline = "Pin2"', r"^reject\.line in config .* must name a camera output line"),
        ('[reject]\noutput = "Out1"', r"^reject\.output in config .* must name a camera user output"),
        ("[reject]\npulse_ms = 0.5", r"^reject\.pulse_ms in config .* from 1 to 10,000"),
        ("[reject]\nencoder_counts = 0", r"^reject\.encoder_counts in config .* whole number from 1"),
        ('[reject]\nenabled = true\nline = "Line1"', r"must not be the trigger line io\.trigger_line \('Line1'\)\.$"),
        ("[reject]\nenabled = true\ndelay_ms = 5.0\nready_margin_ms = 5.0", r"or every part would miss the gate\.$"),
        ('[io]\ntrigger_activation = "AnyEdge"', r"^io\.trigger_activation in config .* 'RisingEdge', 'FallingEdge'"),
        ("[io]\ndebounce_us = -3.0", r"^io\.debounce_us in config .* microseconds"),
        ("[reject]\npulse = 20.0", r"^Unknown key 'reject\.pulse'"),
    ],
)
def test_bad_tables_are_one_sentence(tmp_path, toml, match):
    path = tmp_path / "station.toml"
    path.write_text(toml + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=match) as info:
        load_config(path)
    assert ". " not in str(info.value) and str(info.value).endswith(".")  # one sentence


def test_a_full_reject_table_loads(tmp_path):
    path = tmp_path / "station.toml"
    path.write_text(
        '[io]\ntrigger_line = "Line3"\ntrigger_activation = "FallingEdge"\ndebounce_us = 10\n'
        '[reject]\nenabled = true\nline = "Out1"\nafter = "encoder"\nencoder_counts = 1200\nreject_review = false\n',
        encoding="utf-8",
    )
    c = load_config(path)
    s = io_settings(c.io, c.reject)
    assert (s.trigger_line, s.trigger_activation, s.debounce_us, s.reject_line) == (
        "Line3",
        "FallingEdge",
        10.0,
        "Out1",
    )
    assert (c.reject.after, c.reject.encoder_counts, c.reject.reject_review) == ("encoder", 1200, False)


# -- the alarm ----------------------------------------------------------------------------------
def test_new_misses_raise_one_reject_alarm(tmp_path):
    store = open_record(tmp_path / "alarms.db")
    monitor = AlarmMonitor(store, dataclasses.replace(AlarmConfig(), min_free_disk_mb=0), lambda: None)
    stats = RejectStats(1, 0, 0, 0, 0, 0, 0.0, 0.0, "", "")
    monitor.watch_reject(lambda: stats)
    monitor.check()
    assert monitor.active() == ()
    message = "Part 123 (NG) reached the reject gate before its verdict (late by 12 ms): 3 misses this run."
    stats = dataclasses.replace(stats, misses=3, missed_rejects=1, last_miss=message)
    monitor.check()
    monitor.check()  # no new miss: no new alarm
    [alarm] = monitor.active()
    assert (alarm.kind, alarm.message) == ("reject", message)
    stats = dataclasses.replace(stats, output_errors=1, last_error="Camera x did not accept the output value.")
    monitor.acknowledge()
    monitor.check()  # bursty: within the hold-off a new failure raises nothing new
    assert monitor.active() == ()
    monitor.close()


def test_a_stopping_line_gives_the_pulses_already_due_unless_told_not_to(camera, samples):
    """Parts inspected last are still travelling to the gate when the line stops: close(finish=True)
    pulses them first (Line.stop does), close() drops them."""
    for finish, expected in ((True, 1), (False, 0)):
        cam = SimulatedCamera(samples)
        cam.open()
        cam.configure_io(IoSettings(reject_line="Line2"))
        gate = RejectGate(cam, RejectConfig(enabled=True, delay_ms=300.0, pulse_ms=10.0))
        gate.start()
        gate.on_result(part(1, Verdict.NG, time.perf_counter()))
        gate.close(finish)  # (the part is queued before the close: due in 300 ms)
        assert len(pulses(cam)) == expected and cam.outputs[-1][1] is False
        cam.close()
