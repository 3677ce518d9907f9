"""A station of two emulated Basler cameras through the real pylon stack (conftest sets PYLON_CAMEMU=2):
each plays its own folder on its own device and both stream at once, one grabbing thread each."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from camera import CameraSettings, Frame, TriggerMode, open_cameras
from camera.base import image_files

N_FRAMES = 12


@pytest.fixture
def second_folder(tmp_path: Path) -> Path:
    """Three PNGs unlike the samples: another size, flat colours, a digit each."""
    folder = tmp_path / "station_b"
    folder.mkdir()
    for i in range(3):
        image = np.full((240, 320, 3), 40 + 80 * i, np.uint8)
        cv2.putText(image, str(i), (110, 170), cv2.FONT_HERSHEY_SIMPLEX, 4, (255, 0, 0), 8)
        cv2.imwrite(str(folder / f"{i:02d}.png"), image)
    return folder


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_two_emulated_cameras_stream_their_own_folders_concurrently(samples, second_folder):
    cams = open_cameras(f"emu:{samples}+emu:{second_folder}")
    assert len(cams) == 2
    frames: dict[int, list[Frame]] = {0: [], 1: []}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def grab(k: int) -> None:
        try:
            start.wait(10)  # both cameras grab at the same time
            frames[k].extend(cams[k].grab(2.0) for _ in range(N_FRAMES))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    try:
        for cam in cams:
            cam.open()
            cam.configure(CameraSettings(pixel_format="RGB8", trigger=TriggerMode.SOFTWARE))
            cam.start()
        threads = [threading.Thread(target=grab, args=(k,), name=f"grab-{k}") for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert not any(t.is_alive() for t in threads)
    finally:
        for cam in cams:
            cam.close()

    ids = [cam.camera_id for cam in cams]
    assert len(set(ids)) == 2 and all(i.startswith("basler:") for i in ids)
    for k, cam in enumerate(cams):
        assert len(frames[k]) == N_FRAMES
        assert {f.camera_id for f in frames[k]} == {cam.camera_id}
        frame_ids = [f.frame_id for f in frames[k]]
        assert frame_ids == sorted(frame_ids) and len(set(frame_ids)) == N_FRAMES

    # Each camera played its own folder, in order and looping; never a frame of the other one.
    a_files, b_files = image_files(samples), image_files(second_folder)
    assert {f.image.shape for f in frames[0]} == {(460, 1130, 3)}
    assert {f.image.shape for f in frames[1]} == {(240, 320, 3)}
    for i, frame in enumerate(frames[0]):
        expected = _rgb(a_files[i % len(a_files)])
        assert np.abs(frame.image.astype(int) - expected.astype(int)).mean() < 2.0  # JPEG decoders differ a little
    for i, frame in enumerate(frames[1]):
        assert np.array_equal(frame.image, _rgb(b_files[i % len(b_files)]))  # PNG: exact
