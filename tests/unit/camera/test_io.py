"""Camera lines without hardware: IoSettings, the Camera defaults and the simulated camera's
output record, encoder and fault injection."""

from __future__ import annotations

import time

import pytest

from camera.base import Camera, IoSettings
from camera.errors import CameraError
from camera.simulated import SimulatedCamera


class Bare(Camera):
    """A camera with no lines: only the abstract methods, stubbed."""

    camera_id = "bare"
    is_open = is_grabbing = removed = False

    def open(self): ...
    def close(self): ...
    def configure(self, settings): ...
    def settings(self): ...
    def start(self): ...
    def stop(self): ...
    def grab(self, timeout_s=1.0): ...
    def save_settings(self, path): ...
    def load_settings(self, path): ...


def test_a_camera_without_lines_says_so_in_one_sentence():
    cam = Bare()
    with pytest.raises(CameraError, match=r"^Camera bare has no trigger or output lines\.$"):
        cam.configure_io(IoSettings())
    with pytest.raises(CameraError, match=r"^Camera bare has no output line\.$"):
        cam.set_output(True)
    with pytest.raises(CameraError, match=r"^Camera bare has no encoder\.$"):
        cam.encoder_position()


def test_io_settings_check_themselves():
    assert IoSettings() == IoSettings("Line1", "RisingEdge", None, None, None, "UserOutput1", False)
    with pytest.raises(ValueError, match="trigger activation"):
        IoSettings(trigger_activation="AnyEdge")
    with pytest.raises(ValueError, match="reject line cannot be the trigger line"):
        IoSettings(reject_line="Line1")


def test_simulated_outputs_are_recorded_in_order(samples):
    cam = SimulatedCamera(samples)
    cam.open()
    with pytest.raises(CameraError, match="has no reject output configured"):
        cam.set_output(True)
    cam.configure_io(IoSettings(reject_line="Line2"))
    cam.set_output(True)
    cam.set_output(False)
    assert [v for _, v in cam.outputs] == [True, False]
    assert cam.outputs[0][0] <= cam.outputs[1][0]
    cam.fail_outputs(1)
    with pytest.raises(CameraError, match="did not accept"):
        cam.set_output(True)
    cam.set_output(True)  # only the next one failed
    assert [v for _, v in cam.outputs] == [True, False, True]
    cam.start()
    with pytest.raises(CameraError, match="not grabbing"):
        cam.configure_io(IoSettings())
    cam.set_output(False)  # the output works while grabbing
    cam.disconnect()
    with pytest.raises(CameraError, match="not connected"):
        cam.set_output(True)


def test_simulated_encoder_counts_at_its_speed(samples):
    cam = SimulatedCamera(samples, encoder_counts_per_s=0.0)
    assert cam.encoder_position() == 0
    cam.set_encoder_speed(1e6)
    time.sleep(0.01)
    moved = cam.encoder_position()
    assert moved > 0  # counts rise while the belt runs
    cam.set_encoder_speed(0.0)
    stopped = cam.encoder_position()
    time.sleep(0.01)
    assert cam.encoder_position() == stopped >= moved  # and keep their count when it stops
    with pytest.raises(CameraError, match="has no encoder"):
        SimulatedCamera(samples, has_encoder=False).encoder_position()
