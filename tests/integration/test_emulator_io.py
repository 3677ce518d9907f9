"""Trigger and reject lines on Basler's emulator (real pylon stack): the nodes configure_io writes,
read back through pypylon; the reject output toggled; features the emulator lacks refused in one
sentence; and a reject gate pulsing the emulated output."""

from __future__ import annotations

import time

import pytest

from camera import CameraError, CameraSettings, TriggerMode
from camera.base import IoSettings
from camera.basler import BaslerCamera
from inspection.result import Verdict
from inspection.runtime.reject_gate import RejectGate
from inspection.settings.io import RejectConfig
from tests.fakes import wait_for
from tests.unit.inspection.test_reject import part


@pytest.fixture
def emu():
    cam = BaslerCamera(emulator=True, emulator_index=1)
    cam.open()
    yield cam
    cam.close()


def node(cam: BaslerCamera, name: str, selector: tuple[str, str] | None = None) -> str:
    """A node's value as pylon reports it (after selecting, e.g. ("LineSelector", "Line2"))."""
    nodes = cam._cam.GetNodeMap()
    if selector is not None:
        nodes.GetNode(selector[0]).FromString(selector[1])
    return nodes.GetNode(name).ToString()


def test_hardware_trigger_and_reject_output_are_written_to_the_camera(emu):
    emu.configure(CameraSettings(trigger=TriggerMode.HARDWARE))
    emu.configure_io(
        IoSettings(
            trigger_line="Line3",
            trigger_activation="FallingEdge",
            trigger_delay_us=150.0,
            reject_line="Line2",
            reject_output="UserOutput1",
            reject_inverted=True,
        )
    )
    assert (node(emu, "TriggerMode"), node(emu, "TriggerSource"), node(emu, "TriggerActivation")) == (
        "On",
        "Line3",
        "FallingEdge",
    )
    assert float(node(emu, "TriggerDelay")) == 150.0
    assert node(emu, "LineMode", ("LineSelector", "Line3")) == "Input"
    assert node(emu, "LineMode", ("LineSelector", "Line2")) == "Output"
    assert node(emu, "LineSource", ("LineSelector", "Line2")) == "UserOutput1"
    assert node(emu, "LineInverter", ("LineSelector", "Line2")) == "1"
    # The wiring stays in force through a new configure (a reconnection applies the recipe again).
    emu.configure(CameraSettings(trigger=TriggerMode.HARDWARE))
    assert node(emu, "TriggerSource") == "Line3" and node(emu, "LineSource", ("LineSelector", "Line2")) == "UserOutput1"
    # A software trigger is not delayed by the hardware trigger's delay.
    emu.configure(CameraSettings(trigger=TriggerMode.SOFTWARE))
    assert node(emu, "TriggerSource") == "Software" and float(node(emu, "TriggerDelay")) == 0.0


def test_default_hardware_trigger_is_a_rising_edge_on_line1(emu):
    emu.configure(CameraSettings(trigger=TriggerMode.HARDWARE))
    assert (node(emu, "TriggerSource"), node(emu, "TriggerActivation")) == ("Line1", "RisingEdge")


def test_set_output_toggles_the_user_output(emu):
    emu.configure_io(IoSettings(reject_line="Line2", reject_output="UserOutput2"))
    for value, shown in ((True, "1"), (False, "0"), (True, "1")):
        emu.set_output(value)
        assert node(emu, "UserOutputValue", ("UserOutputSelector", "UserOutput2")) == shown
    assert node(emu, "UserOutputValue", ("UserOutputSelector", "UserOutput1")) == "0"  # the others untouched


@pytest.mark.parametrize(
    "io, match",
    [
        (IoSettings(debounce_us=10.0), r"has no line debouncer \(LineDebouncerTime\), so no debounce can be set\.$"),
        (IoSettings(trigger_line="Line7"), r"has no Line7 for LineSelector; it offers Line1, Line2, Line3\.$"),
        (
            IoSettings(reject_line="Line2", reject_output="UserOutput9"),
            r"has no UserOutput9 for LineSource; it offers ",
        ),
    ],
)
def test_what_the_emulator_lacks_is_one_sentence(emu, io, match):
    with pytest.raises(CameraError, match=r"^Camera basler:\S+ " + match) as info:
        emu.configure_io(io)
    assert ". " not in str(info.value) and "\n" not in str(info.value)  # one sentence, no pylon trace


def test_the_emulator_has_no_encoder_and_no_output_unless_wired(emu):
    with pytest.raises(CameraError, match=r"has no encoder \(EncoderValue or ShaftEncoderModuleCounter\)\.$"):
        emu.encoder_position()
    with pytest.raises(CameraError, match="has no reject output configured"):
        emu.set_output(True)


def test_a_reject_gate_pulses_the_emulated_output(emu):
    emu.configure_io(IoSettings(reject_line="Line2"))
    gate = RejectGate(emu, RejectConfig(enabled=True, delay_ms=1000.0, pulse_ms=30.0))
    gate.start()
    try:
        gate.on_result(part(1, Verdict.NG, time.perf_counter()))
        assert wait_for(lambda: gate.stats().pulses == 1 and gate.stats().width_error_ms_max > 0)  # on, then off
    finally:
        gate.close()
    assert node(emu, "UserOutputValue", ("UserOutputSelector", "UserOutput1")) == "0"
    assert gate.stats().output_errors == 0
