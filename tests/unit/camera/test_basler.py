"""Basler specifics through the real pylon stack (emulated cameras)."""

from __future__ import annotations

import pytest

from camera import CameraNotFoundError, CameraSettings, Roi, list_cameras, open_camera
from camera.basler import BaslerCamera


def test_emulated_cameras_are_listed():
    cams = list_cameras()
    assert [c.kind for c in cams].count("emulator") == 2
    assert all(c.spec == f"basler:{c.serial}" for c in cams)


def test_open_by_serial_and_roi():
    serial = list_cameras()[1].serial
    cam = open_camera(f"basler:{serial}")
    cam.open()
    try:
        assert cam.camera_id == f"basler:{serial}"
        cam.configure(CameraSettings(pixel_format="Mono8", roi=Roi(16, 8, 320, 240), exposure_us=2000.0, gain_db=1.0))
        cam.start()
        frame = cam.grab(2.0)
        assert frame.image.shape == (240, 320)
        assert frame.exposure_us == 2000.0
    finally:
        cam.close()


def test_unknown_serial_lists_what_exists():
    with pytest.raises(CameraNotFoundError, match="0815-0000"):
        open_camera("basler:does-not-exist").open()


def test_no_real_camera_is_one_sentence():
    with pytest.raises(CameraNotFoundError, match="No real Basler camera"):
        BaslerCamera().open()
