"""The line on Basler's emulator with the bundled model, and a pulled cable mid-run."""

from __future__ import annotations

import sqlite3
import time

from inspection.line import open_line
from inspection.runner import RunnerState


def test_pulled_emulated_camera_mid_run(tmp_path, samples):
    line = open_line(camera_spec=f"emu:{samples}", db=tmp_path / "pull.db", device="cpu")
    try:
        runner = line.start()
        deadline = time.monotonic() + 60
        while runner.status().parts < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        line.camera.fire_removal()  # pylon's FirePnPCallback: the cable is pulled
        t0 = time.monotonic()
        assert runner.wait(10)
        assert time.monotonic() - t0 < 2.0  # detected and wound up quickly
        assert runner.state is RunnerState.FAULTED
        status = line.stop()
        assert status is not None and "disconnected" in status.message
        db = sqlite3.connect(line.store.path)
        assert db.execute("select count(*) from inspections").fetchone()[0] == status.parts == status.recorded >= 6
        assert db.execute("select end_state from runs").fetchone()[0] == "faulted"
        line.alarms.check()  # (its thread checks every 0.5 s; at once here)
        assert [a.kind for a in line.alarms.active()] == ["camera"]
        assert db.execute("select kind from events where level='alarm' and message like '%disconnected%'").fetchall() == [("camera",)]
        assert db.execute("select count(*) from events where kind='run' and level='warning' and message like '%disconnected%'").fetchone()[0] == 1
        # The cable goes back in: a new run re-enumerates and opens the camera again.
        runner = line.start(max_parts=3)
        assert runner.wait(30)
        assert line.stop().parts == 3
    finally:
        line.close()
