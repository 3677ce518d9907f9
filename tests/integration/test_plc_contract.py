"""One contract for every PLC transport: the handshake served over OPC UA and over Modbus TCP, driven by
each protocol's real client on 127.0.0.1, against a fake line that answers a Trigger with a part and
publishes its state changes as the line does (fast: no camera, no model, no record). What only one
transport has (OPC UA's refused admin login, Modbus's half-written lot id) stays in its own file; the
whole station on the pylon emulator is driven there too."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from inspection.plant.link import PlcLink, start_plc
from inspection.plant.server import PlcError
from inspection.plant.signals import SIGNALS, ErrorCode
from inspection.result import Verdict
from inspection.runtime.status import RunnerState
from inspection.settings.plc import PlcConfig
from models.base import DefectClass
from tests.fakes import free_port
from tests.integration.plc_clients import PlcClient, plc_client
from tests.integration.plc_station import until
from tests.unit.inspection.plc_fake_line import FakeLine, part

PROTOCOLS = ["opcua", "modbus"]


def inspected(seq: int) -> Any:
    """The fake line's part `seq`: odd parts pass, even parts have a scratch."""
    if seq % 2:
        return part(seq, Verdict.OK, score=0.1)
    return part(seq, Verdict.NG, score=0.75, classes=[DefectClass("scratch", 40, 0.9)])


@dataclasses.dataclass
class Station:
    line: FakeLine
    link: PlcLink
    plc: PlcClient
    counts: dict[str, int] = dataclasses.field(default_factory=dict)  # the handshake's counters before the test

    def count(self, name: str) -> int:
        """What the handshake counted during the test."""
        return int(self.link.signals().get(f"count_{name}", 0)) - self.counts.get(f"count_{name}", 0)

    def answer(self, seq: int) -> None:
        """The part the camera imaged for the last request, as the inspection thread reports it."""
        for fn in self.line.listeners:
            fn(inspected(seq))


def config(protocol: str) -> PlcConfig:
    return PlcConfig(
        enabled=True, protocol=protocol, host="127.0.0.1", port=free_port(), heartbeat_s=0.1, result_timeout_s=2.0
    )


@pytest.fixture(scope="module", params=PROTOCOLS)
def served(request: pytest.FixtureRequest) -> Iterator[Station]:
    """A link per transport for the whole module (an OPC UA server takes seconds to build its address
    space); once closed, its port is free again."""
    line = FakeLine()
    link = start_plc(line, config(request.param))
    assert link is not None
    try:
        with plc_client(link) as plc:
            yield Station(line, link, plc)
    finally:
        link.close()
    with socket.socket() as sock:  # (as a server binds: TIME_WAIT connections of the old one do not count)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", link.handshake.config.bind_port))


@pytest.fixture
def station(served: Station) -> Station:
    """The served link with its line and handshake as a test finds them fresh: running, recipe shaft (index
    1, version 3), no lot, no error, Ready."""
    line, plc = served.line, served.plc
    line.inspect, line.requests, line.lots = None, 0, []
    line.run_state(RunnerState.RUNNING)
    line.change_setup("shaft", 1, 3)
    plc.write("Trigger", False)
    plc.write("RecipeIndex", 1)
    plc.write("ResultAck", True)  # acknowledges a result or error a test left
    assert until(lambda: not plc.read("ResultReady") and not plc.read("Error"), 10)
    plc.write("ResultAck", False)
    assert until(lambda: plc.read("Ready") and plc.read("RecipeName") == "shaft", 10), "the station never became Ready"
    served.counts = {k: v for k, v in served.link.signals().items() if k.startswith("count_")}
    return served


def read_all(plc: PlcClient) -> dict[str, Any]:
    return {s.name: plc.read(s.name) for s in SIGNALS}


def test_every_signal_is_served_with_the_handshake_value(station):
    plc = station.plc
    assert until(lambda: plc.read("Ready")), "the station never became Ready"
    served = read_all(plc)
    values = station.link.handshake.values()
    exact = [s.name for s in SIGNALS if s.name not in ("Heartbeat", "Score")]  # (Modbus holds a float32 score)
    assert {k: served[k] for k in exact} == {k: values[k] for k in exact}
    assert served["Score"] == pytest.approx(values["Score"], rel=1e-6)
    assert (served["RecipeName"], served["RecipeIndexActive"], served["RecipeVersion"]) == ("shaft", 1, 3)
    assert served["RecipeIndex"] == 1 and served["ErrorCode"] == 0 and not served["Error"]


def test_trigger_busy_result_ready_and_result_ack(station):
    plc, line = station.plc, station.line
    assert until(lambda: plc.read("Ready"))
    plc.write("Trigger", True)
    assert until(lambda: plc.read("Busy") and not plc.read("Ready")), "no Busy after Trigger"
    assert until(lambda: line.requests == 1)  # the camera was asked for one part
    station.answer(1)
    assert until(lambda: plc.read("ResultReady")), "no ResultReady after the part's result"
    assert not plc.read("Busy") and not plc.read("Ready")
    assert (plc.read("ResultOK"), plc.read("ResultNG"), plc.read("DefectClass")) == (True, False, "")
    assert (plc.read("PartId"), plc.read("PartSeq")) == (f"{1:032x}", 1)
    assert plc.read("Score") == pytest.approx(0.1)
    plc.write("Trigger", False)
    plc.write("ResultAck", True)
    assert until(lambda: not plc.read("ResultReady"))
    assert not plc.read("ResultOK") and not plc.read("ResultNG")
    assert plc.read("PartId") == f"{1:032x}"  # the last part's data stays readable
    plc.write("ResultAck", False)
    assert until(lambda: plc.read("Ready"))
    line.inspect = inspected  # from now on the line answers each request itself
    plc.write("Trigger", True)
    assert until(lambda: plc.read("ResultReady") and plc.read("PartSeq") == 2)
    assert (plc.read("ResultOK"), plc.read("ResultNG"), plc.read("DefectClass")) == (False, True, "scratch")
    assert plc.read("Score") == pytest.approx(0.75)
    plc.write("Trigger", False)
    assert station.count("triggers") == 2 and station.count("results") == 2


def test_a_trigger_before_the_ack_is_an_overrun_cleared_by_result_ack(station):
    plc, line = station.plc, station.line
    line.inspect = inspected
    assert until(lambda: plc.read("Ready"))
    plc.write("Trigger", True)
    assert until(lambda: plc.read("ResultReady"))
    plc.write("Trigger", False)
    plc.write("Trigger", True)  # before ResultAck
    assert until(lambda: plc.read("Error") and plc.read("ErrorCode") == ErrorCode.TRIGGER_OVERRUN)
    assert line.requests == 1  # no part imaged for it
    plc.write("Trigger", False)
    plc.write("ResultAck", True)
    assert until(lambda: not plc.read("Error") and plc.read("ErrorCode") == 0 and not plc.read("ResultReady"))
    plc.write("ResultAck", False)
    assert until(lambda: plc.read("Ready"))


def test_lot_id_goes_to_the_line(station):
    station.plc.write("LotId", "LOT-2026-12-07")
    assert until(lambda: station.line.lots == ["LOT-2026-12-07"])
    assert station.plc.read("LotId") == "LOT-2026-12-07"  # what the PLC wrote stays readable


def test_recipe_index_changes_the_recipe_and_an_unknown_index_is_an_error(station):
    plc, line = station.plc, station.line
    assert until(lambda: plc.read("Ready"))
    plc.write("RecipeIndex", 2)
    assert until(lambda: plc.read("RecipeName") == "flange" and plc.read("Ready")), "the recipe did not change"
    assert (plc.read("RecipeIndexActive"), plc.read("RecipeVersion")) == (2, 4)
    plc.write("RecipeIndex", 9)  # no recipe has it
    assert until(lambda: plc.read("Error") and plc.read("ErrorCode") == ErrorCode.RECIPE_UNKNOWN)
    assert plc.read("RecipeName") == "flange" and line.recipe.name == "flange"
    plc.write("ResultAck", True)  # acknowledges the error
    assert until(lambda: not plc.read("Error") and plc.read("ErrorCode") == 0)
    plc.write("ResultAck", False)


def test_the_error_code_follows_the_line_state(station):
    plc, line = station.plc, station.line
    assert until(lambda: plc.read("Ready"))
    line.run_state(RunnerState.PAUSED)
    assert until(lambda: plc.read("ErrorCode") == ErrorCode.PAUSED and plc.read("Error") and not plc.read("Ready"))
    line.run_state(RunnerState.FAULTED, "camera", reconnecting=True)
    assert until(lambda: plc.read("ErrorCode") == ErrorCode.CAMERA_LOST)
    line.run_state(RunnerState.RUNNING)
    assert until(lambda: plc.read("ErrorCode") == 0 and not plc.read("Error") and plc.read("Ready"))
    line.change_setup("flange", 2, 8)  # the operator changed the recipe in the window
    assert until(lambda: plc.read("RecipeName") == "flange" and plc.read("RecipeVersion") == 8)


def test_heartbeat_toggles(station):
    beats = [station.plc.read("Heartbeat")]

    def toggled_twice() -> bool:
        if (beat := station.plc.read("Heartbeat")) != beats[-1]:
            beats.append(beat)
        return len(beats) >= 3

    assert until(toggled_twice, 10), beats


def test_outputs_refuse_client_writes(station):
    plc = station.plc
    assert until(lambda: plc.read("Ready"))
    before = read_all(plc)
    for name, value in {"Ready": False, "ResultReady": True, "ErrorCode": 7, "PartSeq": 5, "RecipeName": "x"}.items():
        plc.write_output(name, value)
    after = read_all(plc)
    assert {k: v for k, v in after.items() if k != "Heartbeat"} == {k: v for k, v in before.items() if k != "Heartbeat"}
    assert station.count("triggers") == 0 and station.count("acks") == 0  # no input was touched


def test_a_second_link_on_the_address_is_refused(station):
    with pytest.raises(PlcError) as err:
        start_plc(station.line, station.link.handshake.config)
    message = str(err.value)
    assert "in use" in message and message.endswith(".") and "\n" not in message
    assert until(lambda: station.plc.read("Ready"))  # the running link is not disturbed
