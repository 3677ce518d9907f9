"""Basler specifics through the real pylon stack (emulated cameras)."""

from __future__ import annotations

import contextlib
import gc
import weakref

import cv2
import numpy as np
import pytest

from camera import (
    CameraNotFoundError,
    CameraRemovedError,
    CameraSettings,
    Roi,
    TriggerMode,
    list_cameras,
    open_camera,
    pylon_driver,
)
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
    handlers_before = len(pylon_driver.live_removal_handlers)
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
            assert len(pylon_driver.live_removal_handlers) == handlers_before + 1
            assert cam.device_settings().exposure_us != 4321.0  # the emulator forgot: the runner reapplies the recipe
    finally:
        cam.close()
    gc.collect()
    assert len(pylon_driver.live_removal_handlers) == handlers_before


@pytest.mark.parametrize("fmt", ["Mono8", "RGB8"])
def test_frames_are_one_fresh_copy_of_the_driver_buffer(samples, fmt):
    """GetArrayZeroCopy, then one copy: the frame owns its pixels, so pylon may reuse its buffer."""
    cam = BaslerCamera(emulator=True, playback_dir=samples)
    cam.open()
    try:
        cam.configure(CameraSettings(pixel_format=fmt))
        cam.start()
        frames = [cam.grab(2.0) for _ in range(20)]  # more than MaxNumBuffer: buffers are reused
        for frame in frames:
            assert frame.image.flags.owndata and frame.image.flags.c_contiguous and frame.image.base is None
        assert not np.array_equal(frames[0].image, frames[1].image)
        assert np.array_equal(frames[0].image, frames[8].image)  # 8 images, looping: not overwritten
    finally:
        cam.close()


def test_other_pixel_formats_are_converted_once_then_copied(samples):
    cam = BaslerCamera(emulator=True, playback_dir=samples)
    cam.open()
    try:
        cam.configure(CameraSettings(pixel_format="RGB8"))
        cam._node("PixelFormat").FromString("BGR8Packed")  # as a .pfs file might leave it
        cam.start()
        image = cam.grab(2.0).image
    finally:
        cam.close()
    first = sorted(samples.glob("*.jpg"))[0]
    expected = cv2.cvtColor(cv2.imread(str(first)), cv2.COLOR_BGR2RGB)
    assert image.shape == expected.shape and image.flags.owndata
    assert np.abs(image.astype(int) - expected.astype(int)).mean() < 2.0


class _PaddedImage:
    """A stand-in for a pylon image whose rows are padded (real cameras may align rows)."""

    def __init__(self, pixels, padding_x: int, pixel_type: int) -> None:
        h, w = pixels.shape[:2]
        row = pixels.reshape(h, -1)
        self.buffer = np.concatenate([row, np.full((h, padding_x), 77, np.uint8)], axis=1).tobytes()
        self.width, self.height, self.padding_x, self.pixel_type = w, h, padding_x, pixel_type

    def GetWidth(self):  # noqa: N802 (pylon's names)
        return self.width

    def GetHeight(self):  # noqa: N802
        return self.height

    def GetPixelType(self):  # noqa: N802
        return self.pixel_type

    def GetArrayZeroCopy(self, raw=False):  # noqa: N802
        assert raw
        return contextlib.nullcontext(np.frombuffer(self.buffer, np.uint8))


@pytest.mark.parametrize("channels", [1, 3])
def test_padded_rows_are_copied_without_their_padding(channels):
    pylon = pylon_driver.pylon_module()
    shape = (5, 7) if channels == 1 else (5, 7, 3)
    pixels = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    ptype = pylon.PixelType_Mono8 if channels == 1 else pylon.PixelType_RGB8packed
    out = pylon_driver.copy_out(_PaddedImage(pixels, 3, ptype), padding_x=3)
    assert np.array_equal(out, pixels) and out.flags.owndata and out.flags.c_contiguous
