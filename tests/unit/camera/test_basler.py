"""Basler specifics through the real pylon stack (emulated cameras)."""

from __future__ import annotations

import gc
import weakref

import pytest

from camera import CameraNotFoundError, CameraRemovedError, CameraSettings, Roi, TriggerMode, list_cameras, open_camera
from camera import basler
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


def test_reopening_after_a_removal_releases_the_old_camera_and_its_handler(samples):
    """FirePnPCallback, then close (stop grabbing, close, DestroyDevice) and open again (re-enumerate,
    attach): no InstantCamera or removal handler is left behind per reconnection, and the reopened
    camera starts from the device's defaults (so settings must be applied again)."""
    cam = BaslerCamera(emulator=True, playback_dir=samples)
    gc.collect()
    handlers_before = len(basler.live_removal_handlers)
    cam.open()
    try:
        for _ in range(3):
            cam.configure(CameraSettings(pixel_format="RGB8", trigger=TriggerMode.SOFTWARE, exposure_us=4321.0))
            cam.start()
            assert cam.grab(2.0).image.ndim == 3
            old = weakref.ref(cam._cam)
            cam.fire_removal()
            with pytest.raises(CameraRemovedError):
                cam.grab(2.0)
            cam.close()
            cam.open()
            gc.collect()
            assert old() is None and not cam.removed
            assert len(basler.live_removal_handlers) == handlers_before + 1
            assert cam.device_settings().exposure_us != 4321.0  # the emulator forgot: the runner reapplies the recipe
    finally:
        cam.close()
    gc.collect()
    assert len(basler.live_removal_handlers) == handlers_before
