"""The line on Basler's emulator (real pylon stack, real SQLite file): a pulled cable mid-run that is
detected, reconnected with the recipe's settings and resumed; and frames dropped when inspection
falls behind a free-running camera, counted in the status, the record and an alarm."""

from __future__ import annotations

import dataclasses
import sqlite3

from camera import CameraSettings, TriggerMode, open_camera
from camera.basler import BaslerCamera
from inspection.line import Line, open_line
from inspection.record.opening import open_record
from inspection.runtime.status import RunnerState
from inspection.settings.config import load_config
from inspection.settings.recipe import load_recipe
from tests.fakes import FakeInspector, wait_for

EXPOSURE_US = 4321.0  # distinctive: the emulator's own value is 10000


def test_pulled_emulated_camera_is_reconnected_with_its_settings_and_inspection_resumes(tmp_path, samples):
    # A recipe with a .pfs file written by the camera itself, holding a distinctive exposure.
    cam = BaslerCamera(emulator=True, playback_dir=samples)
    cam.open()
    try:
        cam.configure(CameraSettings(pixel_format="RGB8", trigger=TriggerMode.SOFTWARE, exposure_us=EXPOSURE_US))
        cam.save_settings(tmp_path / "cam.pfs")
    finally:
        cam.close()
    (tmp_path / "recipe.toml").write_text('[camera]\nsettings_file = "cam.pfs"\n', encoding="utf-8")

    line = open_line(
        camera_spec=f"emu:{samples}", db=tmp_path / "pull.db", recipe=tmp_path / "recipe.toml", device="cpu"
    )
    ndims: list[int] = []
    line.add_result_listener(lambda r: ndims.append(r.image.ndim))
    try:
        runner = line.start()
        assert wait_for(lambda: runner.status().parts >= 6)
        assert line.camera.device_settings().exposure_us == EXPOSURE_US
        line.camera.fire_removal()  # pylon's FirePnPCallback: the cable is pulled (the emulator is back at once)
        assert wait_for(lambda: runner.status().camera_losses == 1)  # detected
        assert wait_for(lambda: runner.status().reconnects == 1 and runner.state is RunnerState.RUNNING)
        back = runner.status()
        assert back.fault == "" and "reconnected" in back.message and "inspection resumed" in back.message
        assert wait_for(lambda: runner.status().parts >= back.parts + 6)  # parts continue
        # The recipe's settings are in force again: its pixel format and the .pfs file's exposure
        # (a reopened emulator starts from its defaults, Mono8 and 10000 us).
        assert line.camera.device_settings().exposure_us == EXPOSURE_US
        assert line.camera.device_settings().pixel_format == "RGB8"
        assert set(ndims) == {3}  # RGB8 before and after
        line.alarms.check()  # (its thread checks every 0.5 s; at once here)
        status = line.stop()
        assert status is not None and status.state is RunnerState.IDLE and status.reconnects == 1
        db = sqlite3.connect(line.store.path)
        n, part_ids = db.execute("select count(*), count(distinct part_id) from inspections").fetchone()
        assert n == part_ids == status.parts == status.recorded >= 12  # every part once, nothing twice
        assert db.execute("select count(*), min(end_state) from runs").fetchone() == (1, "stopped")
        events = db.execute("select level, message from events where kind='camera' order by id").fetchall()
        assert [level for level, _ in events] == ["alarm", "info"]
        assert "disconnected" in events[0][1] and "reconnected" in events[1][1]
        assert [a.kind for a in line.alarms.active()] == ["camera"]  # until an operator acknowledges it
    finally:
        line.close()


def test_frames_dropped_behind_a_free_running_emulator_are_counted_recorded_and_alarmed(tmp_path, samples):
    config = load_config()
    config = dataclasses.replace(config, queue_size=2, alarms=dataclasses.replace(config.alarms, min_free_disk_mb=0))
    recipe = dataclasses.replace(
        load_recipe(), camera=CameraSettings(pixel_format="Mono8", trigger=TriggerMode.FREE_RUN, frame_rate=100.0)
    )
    line = Line(
        store=open_record(tmp_path / "drops.db"),
        config=config,
        recipe=recipe,
        camera_spec=f"emu:{samples}",
        inspector=FakeInspector(delay_s=0.05),
        cameras=[open_camera(f"emu:{samples}")],
    )
    seen: list[int] = []
    line.add_result_listener(lambda r: seen.append(r.frame_id))
    try:
        runner = line.start(max_parts=15)
        assert runner.wait(60)
        line.alarms.check()
        status = line.stop()
        assert status is not None and status.parts == 15 and status.dropped > 0  # ~100 fps into a 20 parts/s model
        # Every frame up to the last one inspected was inspected or dropped: none lost uncounted.
        assert seen == sorted(seen) and seen[-1] - seen[0] + 1 <= status.parts + status.dropped
        db = sqlite3.connect(line.store.path)
        assert db.execute("select count(*) from inspections").fetchone()[0] == status.parts
        assert (
            db.execute("select dropped_frames from runs where id=?", (status.run_id,)).fetchone()[0] == status.dropped
        )
        (alarm,) = [a for a in line.alarms.active() if a.kind == "dropped"]
        assert "not inspected" in alarm.message
    finally:
        line.close()
