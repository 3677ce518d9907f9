"""Shared by the inspection tests: a fake model and lines on the simulated camera with a real SQLite file."""

from __future__ import annotations

import dataclasses

import pytest

from camera import CameraSettings, TriggerMode
from camera.simulated import SimulatedCamera
from inspection.line import Line
from inspection.record.opening import open_record
from inspection.settings.config import load_config
from inspection.settings.recipe import load_recipe
from tests.fakes import FakeInspector


@pytest.fixture
def make_line(tmp_path, samples):
    lines = []

    def make(
        inspector=None,
        camera=None,
        trigger=TriggerMode.SOFTWARE,
        queue_size=None,
        frame_rate=200.0,
        cameras=None,
        mode="latency",
        max_batch=4,
    ):
        store = open_record(tmp_path / "runner.db")
        config = load_config()
        # No low-disk alarm and no image retention on a test machine with little room (test_alarms and
        # test_disk check them on purpose).
        config = dataclasses.replace(
            config,
            alarms=dataclasses.replace(config.alarms, min_free_disk_mb=0),
            retention=dataclasses.replace(config.retention, min_free_mb=0),
        )
        if queue_size:
            config = dataclasses.replace(config, queue_size=queue_size)
        config = dataclasses.replace(config, mode=mode, max_batch=max_batch)
        recipe = load_recipe()
        recipe = dataclasses.replace(
            recipe, camera=CameraSettings(pixel_format="Mono8", trigger=trigger, frame_rate=frame_rate)
        )
        line = Line(
            store=store,
            config=config,
            recipe=recipe,
            camera_spec=f"sim:{samples}",
            inspector=inspector or FakeInspector(),
            cameras=cameras or [camera or SimulatedCamera(samples)],
        )
        lines.append(line)
        return line

    yield make
    for line in lines:
        line.close()
