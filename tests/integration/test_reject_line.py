"""The reject output on a running line (pylon emulator, demo model, real SQLite file): every rejected
part of the record gets one pulse on the camera's output line, OK parts none; a gate closer than the
verdict takes counts every part as a miss, pulses none, and raises the reject alarm."""

from __future__ import annotations

import sqlite3

from inspection.line import open_line
from tests.fakes import wait_for

PARTS = 12


def _line(tmp_path, samples, reject: str):
    (tmp_path / "station.toml").write_text(
        "[alarms]\nmin_free_disk_mb = 0\n[retention]\nmin_free_mb = 0\n"
        f'[reject]\nenabled = true\nline = "Line2"\noutput = "UserOutput1"\npulse_ms = 2.0\n{reject}',
        encoding="utf-8",
    )
    return open_line(
        camera_spec=f"emu:{samples}", db=tmp_path / "line.db", config=tmp_path / "station.toml", device="cpu"
    )


def test_rejected_parts_pulse_the_output_once_each(tmp_path, samples):
    line = _line(tmp_path, samples, "delay_ms = 3000.0\nready_margin_ms = 1.0\nreject_review = true\n")
    try:
        runner = line.start(max_parts=PARTS)
        assert runner.wait(120)
        gate = line.reject_gate
        # Each rejected part counts one pulse, a part whose pulse merged into one already on included.
        assert wait_for(lambda: gate.stats().pulses == runner.status().ng + runner.status().review)
        stats = gate.stats()
        line.stop()
    finally:
        line.close()
    with sqlite3.connect(tmp_path / "line.db") as c:
        rejected = c.execute("SELECT COUNT(*) FROM inspections WHERE verdict != 'OK'").fetchone()[0]
    assert rejected > 0 and stats.pulses == rejected and stats.merged <= stats.pulses
    assert stats.misses == 0 and stats.output_errors == 0


def test_a_gate_closer_than_the_verdict_is_a_miss_with_an_alarm(tmp_path, samples):
    line = _line(tmp_path, samples, "delay_ms = 0.2\nready_margin_ms = 0.1\n")
    try:
        runner = line.start(max_parts=PARTS)
        assert runner.wait(120)
        assert wait_for(lambda: line.reject_gate.stats().misses == PARTS)
        assert line.reject_gate.stats().pulses == 0  # a late pulse would hit the next part
        line.alarms.check()
        assert any(a.kind == "reject" and "before its verdict" in a.message for a in line.alarms.active())
    finally:
        line.close()
    with sqlite3.connect(tmp_path / "line.db") as c:
        assert c.execute("SELECT COUNT(*) FROM events WHERE kind = 'reject' AND level = 'alarm'").fetchone()[0] >= 1
