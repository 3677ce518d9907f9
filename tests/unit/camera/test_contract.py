"""One contract for every camera: the simulated camera and Basler's emulator through real pylon."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from camera import (
    CameraError,
    CameraNotFoundError,
    CameraRemovedError,
    CameraSettings,
    GrabFailed,
    GrabTimeout,
    TriggerMode,
    open_camera,
)
from camera.base import image_files


@pytest.fixture(params=["sim", "emu"])
def cam(request, samples):
    camera = open_camera(f"{request.param}:{samples}")
    camera.open()
    yield camera
    camera.close()


def grab_n(camera, n, timeout_s=2.0):
    return [camera.grab(timeout_s) for _ in range(n)]


def test_rgb8_frames_are_read_only_copies_of_the_played_images(cam, samples):
    cam.configure(CameraSettings(pixel_format="RGB8", trigger=TriggerMode.SOFTWARE))
    cam.start()
    frames = grab_n(cam, 3)
    cam.stop()
    first = image_files(samples)[0]
    import cv2

    expected = cv2.cvtColor(cv2.imread(str(first)), cv2.COLOR_BGR2RGB)
    assert frames[0].image.shape == expected.shape
    assert frames[0].image.dtype == np.uint8
    # JPEG decoders may differ by a grey level or so; the content must be the same image.
    assert np.abs(frames[0].image.astype(int) - expected.astype(int)).mean() < 2.0
    assert not frames[0].image.flags.writeable
    ids = [f.frame_id for f in frames]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert all(f.camera_id == cam.camera_id for f in frames)


def test_mono8_frames_are_2d(cam):
    cam.configure(CameraSettings(pixel_format="Mono8"))
    cam.start()
    frame = cam.grab(2.0)
    assert frame.image.ndim == 2 and frame.image.shape == (460, 1130)


def test_playback_loops_over_the_folder(cam, samples):
    n = len(image_files(samples))
    cam.configure(CameraSettings(pixel_format="Mono8"))
    cam.start()
    frames = grab_n(cam, n + 1)
    assert np.array_equal(frames[0].image, frames[n].image)
    assert not np.array_equal(frames[0].image, frames[1].image)


def test_free_run_delivers_frames(cam):
    cam.configure(CameraSettings(pixel_format="Mono8", trigger=TriggerMode.FREE_RUN, frame_rate=50.0))
    cam.start()
    assert len(grab_n(cam, 5)) == 5


def test_hardware_trigger_without_a_pulse_times_out(cam):
    cam.configure(CameraSettings(pixel_format="Mono8", trigger=TriggerMode.HARDWARE))
    cam.start()
    with pytest.raises(GrabTimeout):
        cam.grab(0.3)


def test_failed_grabs_raise_and_the_camera_recovers(cam):
    cam.configure(CameraSettings(pixel_format="Mono8"))
    cam.start()
    cam.grab(2.0)
    cam.fail_next(2)
    for _ in range(2):
        with pytest.raises(GrabFailed):
            cam.grab(2.0)
    assert cam.grab(2.0).image.size > 0


def test_pulled_cable_is_detected(cam):
    cam.configure(CameraSettings(pixel_format="Mono8"))
    cam.start()
    cam.grab(2.0)
    if hasattr(cam, "fire_removal"):
        cam.fire_removal()
    else:
        cam.disconnect()
    deadline = time.monotonic() + 1.0
    while not cam.removed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cam.removed
    with pytest.raises(CameraRemovedError):
        cam.grab(1.0)


def test_a_pulled_camera_opens_again_once_it_is_back(cam):
    cam.configure(CameraSettings(pixel_format="RGB8"))
    cam.start()
    cam.grab(2.0)
    if hasattr(cam, "fire_removal"):
        cam.fire_removal()  # the emulator is back at once: it can be re-enumerated and attached
    else:
        cam.disconnect()
    deadline = time.monotonic() + 1.0
    while not cam.removed and time.monotonic() < deadline:
        time.sleep(0.01)
    cam.close()
    if hasattr(cam, "plug_in"):
        with pytest.raises(CameraNotFoundError, match="not connected"):
            cam.open()  # unplugged: no camera to open
        cam.plug_in()
    cam.open()
    assert cam.is_open and not cam.removed
    cam.configure(CameraSettings(pixel_format="Mono8"))
    cam.start()
    assert cam.grab(2.0).image.ndim == 2


def test_settings_change_only_while_not_grabbing(cam):
    cam.configure(CameraSettings(pixel_format="Mono8"))
    cam.start()
    with pytest.raises(CameraError):
        cam.configure(CameraSettings(pixel_format="RGB8"))


def test_settings_round_trip_through_a_pfs_file(cam, tmp_path: Path):
    cam.configure(CameraSettings(pixel_format="RGB8", trigger=TriggerMode.FREE_RUN, exposure_us=5000.0))
    path = tmp_path / "cam.pfs"
    cam.save_settings(path)
    assert path.stat().st_size > 0
    cam.configure(CameraSettings(pixel_format="Mono8", trigger=TriggerMode.SOFTWARE, exposure_us=7000.0))
    cam.load_settings(path)
    s = cam.settings()
    assert (s.pixel_format, s.trigger, s.exposure_us) == ("RGB8", TriggerMode.FREE_RUN, 5000.0)
    cam.start()
    assert cam.grab(2.0).image.ndim == 3


@pytest.mark.parametrize("kind", ["sim", "emu"])
def test_missing_or_empty_folder_is_one_sentence(kind, tmp_path: Path):
    for folder, words in ((tmp_path / "nope", "does not exist"), (tmp_path, "holds no")):
        camera = open_camera(f"{kind}:{folder}")
        with pytest.raises(CameraError, match=words):
            camera.open()


@pytest.mark.parametrize("kind", ["sim", "emu"])
def test_a_folder_of_unreadable_images_is_one_sentence(kind, tmp_path, samples):
    (tmp_path / "a.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "b.png").write_bytes(sorted(samples.glob("*.jpg"))[0].read_bytes()[:100])  # truncated
    with pytest.raises(CameraError, match="None of the 2 images"):
        open_camera(f"{kind}:{tmp_path}").open()


def test_unknown_specs_are_refused():
    for spec in ("usb:0", "sim:", "basler:", "emu"):
        with pytest.raises(CameraError, match="(?i)camera spec"):
            open_camera(spec)
