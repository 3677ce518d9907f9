"""The PLC handshake state machine (inspection.plant.handshake.Handshake) against a fake line that
publishes its state changes as the line does: every transition, REVIEW and failed parts, overruns, recipe
changes, error codes and the heartbeat; and the [plc] config."""

from __future__ import annotations

import itertools
import math
import threading
from types import SimpleNamespace

import pytest

from inspection.errors import ConfigError
from inspection.plant.handshake import Handshake
from inspection.plant.link import start_plc
from inspection.plant.signals import ErrorCode, line_error
from inspection.result import Verdict
from inspection.runtime.events import RunStateChanged
from inspection.runtime.status import RunnerState
from inspection.settings.config import load_config
from inspection.settings.plc import PlcConfig
from models.base import DefectClass
from tests.fakes import wait_for
from tests.unit.inspection.plc_fake_line import FakeLine, part


class Probe:
    """A running handshake on a fake line, with everything it published."""

    def __init__(self, line: FakeLine, **config) -> None:
        self.line = line
        self.published: list[dict] = []
        self._lock = threading.Lock()
        self.hs = Handshake(line, PlcConfig(enabled=True, host="127.0.0.1", **config))
        self.hs.start(self._publish)

    def _publish(self, changes: dict) -> None:
        with self._lock:
            self.published.append(dict(changes))

    def changes(self) -> list[tuple[str, object]]:
        with self._lock:
            return [item for c in self.published for item in c.items()]

    def v(self, name: str):
        return self.hs.values()[name]

    def until(self, **expected) -> None:
        assert wait_for(lambda: all(self.hs.values()[k] == v for k, v in expected.items()), 10), (
            f"expected {expected}, have {self.hs.signals()}"
        )

    def pulse(self, name: str) -> None:
        self.hs.write(name, True)
        self.hs.write(name, False)


@pytest.fixture
def probe():
    probes: list[Probe] = []

    def make(line: FakeLine | None = None, **config) -> Probe:
        probes.append(Probe(line or FakeLine(), **config))
        return probes[-1]

    yield make
    for p in probes:
        p.hs.close()


def test_trigger_result_ack_cycle_publishes_the_result_before_result_ready(probe):
    p = probe()
    p.until(
        Ready=True, Busy=False, Error=False, RecipeName="shaft", RecipeIndexActive=1, RecipeVersion=3, RecipeIndex=1
    )
    p.hs.write("Trigger", True)
    p.until(Busy=True, Ready=False)
    assert wait_for(lambda: p.line.requests == 1)
    p.hs.on_result(
        part(1, Verdict.NG, score=0.9, classes=[DefectClass("scratch", 40, 0.9), DefectClass("dent", 5, 0.6)])
    )
    p.until(
        ResultReady=True,
        Busy=False,
        ResultNG=True,
        ResultOK=False,
        DefectClass="scratch,dent",
        Score=0.9,
        PartId=f"{1:032x}",
        PartSeq=1,
        Ready=False,
    )
    order = [k for k, _ in p.changes()]
    assert order.index("Busy") < order.index("DefectClass")  # Busy first, at the trigger
    last = max(i for i, k in enumerate(order) if k == "ResultReady")
    assert all(order.index(k) < last for k in ("DefectClass", "Score", "PartId", "PartSeq", "ResultNG"))
    p.hs.write("Trigger", False)
    p.hs.write("ResultAck", True)
    p.until(ResultReady=False, ResultNG=False, ResultOK=False, Ready=False)  # ResultAck still high
    assert p.v("PartId") == f"{1:032x}"  # the last part's data stays readable
    p.hs.write("ResultAck", False)
    p.until(Ready=True)
    # A second part, OK.
    p.pulse("Trigger")
    p.until(Busy=True)
    p.hs.on_result(part(2, Verdict.OK, score=0.05))
    p.until(ResultReady=True, ResultOK=True, ResultNG=False, DefectClass="", PartSeq=2, Busy=False)
    p.pulse("ResultAck")
    p.until(Ready=True, ResultReady=False)
    counts = p.hs.signals()
    assert counts["count_triggers"] == 2 and counts["count_results"] == 2 and counts["count_acks"] == 2
    assert p.line.requests == 2


def test_review_and_failed_parts_are_rejected_and_other_views_ignored(probe):
    p = probe()
    p.until(Ready=True)
    p.pulse("Trigger")
    p.until(Busy=True)
    p.hs.on_result(part(1, Verdict.OK, view=1))  # a second camera's view: not a part of its own
    p.hs.on_result(part(1, Verdict.OK, part_verdict=Verdict.REVIEW, score=math.nan))  # the model failed
    p.until(ResultReady=True, ResultOK=False, ResultNG=True, DefectClass="review", Score=-1.0)
    p.pulse("ResultAck")
    p.until(Ready=True)
    p.pulse("Trigger")
    p.until(Busy=True)
    p.hs.on_result(part(2, Verdict.NG))  # NG without a named class
    p.until(ResultReady=True, ResultNG=True, DefectClass="defect")
    assert p.hs.signals()["count_results"] == 2


def test_a_trigger_while_busy_or_before_the_ack_is_an_overrun_and_ignored(probe):
    p = probe()
    p.until(Ready=True)
    p.pulse("Trigger")
    p.until(Busy=True)
    p.pulse("Trigger")  # while Busy
    p.until(Error=True, ErrorCode=ErrorCode.TRIGGER_OVERRUN)
    p.hs.on_result(part(1))
    p.until(ResultReady=True, Busy=False)
    p.pulse("Trigger")  # before ResultAck
    assert wait_for(lambda: p.hs.signals()["count_trigger_overrun"] == 2)
    assert p.v("ErrorCode") == ErrorCode.TRIGGER_OVERRUN and p.v("ResultReady")
    assert p.line.requests == 1  # neither imaged a part
    p.pulse("ResultAck")  # acknowledges the result and the latched error
    p.until(Error=False, ErrorCode=0, Ready=True, ResultReady=False)


def test_line_state_sets_error_codes_and_a_refused_trigger_is_latched(probe):
    line = FakeLine(RunnerState.IDLE)
    p = probe(line)
    p.until(Error=True, ErrorCode=ErrorCode.NOT_RUNNING, Ready=False)
    p.pulse("Trigger")
    assert wait_for(lambda: p.hs.signals().get("count_trigger_refused") == 1)
    assert line.requests == 0
    line.run_state(RunnerState.RUNNING)
    p.until(ErrorCode=ErrorCode.TRIGGER_REFUSED, Ready=True)  # the line runs; the refusal stays until acknowledged
    p.pulse("ResultAck")
    p.until(Error=False, ErrorCode=0)
    line.run_state(RunnerState.FAULTED, "camera")
    p.until(ErrorCode=ErrorCode.CAMERA_FAULT, Ready=False)
    line.run_state(RunnerState.FAULTED, "camera", reconnecting=True)
    p.until(ErrorCode=ErrorCode.CAMERA_LOST)
    line.run_state(RunnerState.FAULTED, "record")
    p.until(ErrorCode=ErrorCode.RECORD_FAULT)
    line.run_state(RunnerState.PAUSED)
    p.until(ErrorCode=ErrorCode.PAUSED)
    line.run_state(RunnerState.RUNNING)
    p.until(Error=False, Ready=True)


def test_the_line_state_is_pushed_and_read_again_until_the_status_shows_the_event(probe):
    line = FakeLine(RunnerState.IDLE)
    p = probe(line)
    p.until(ErrorCode=ErrorCode.NOT_RUNNING)
    line.state = RunnerState.RUNNING  # no event: nothing polls the line's state
    assert not wait_for(lambda: p.v("ErrorCode") == 0, 0.5)
    line.state = RunnerState.IDLE
    line.events.publish(RunStateChanged(2, "running"))  # a run publishes before the line shows it
    assert not wait_for(lambda: p.v("ErrorCode") == 0, 0.3)
    line.state = RunnerState.RUNNING  # (no second event: the status is read again until it shows "running")
    p.until(ErrorCode=0, Ready=True)


def test_closing_unsubscribes_from_the_line(probe):
    line = FakeLine()
    hs = Handshake(line, PlcConfig(enabled=True, host="127.0.0.1"))
    hs.start(lambda changes: None)
    hs.close()
    line.run_state(RunnerState.PAUSED)  # nobody listens: nothing queued for a closed handshake
    assert hs._inbox.empty()


def test_line_error_table():
    def st(state, fault="", reconnecting=False):
        return SimpleNamespace(state=state, fault=fault, reconnecting=reconnecting)

    assert line_error(None) is ErrorCode.NOT_RUNNING
    assert line_error(st(RunnerState.RUNNING)) is ErrorCode.NONE
    assert line_error(st(RunnerState.STOPPING)) is ErrorCode.NOT_RUNNING
    assert line_error(st(RunnerState.FAULTED, "inspection")) is ErrorCode.INSPECTION_FAULT
    assert line_error(st(RunnerState.FAULTED, "camera", True)) is ErrorCode.CAMERA_LOST


def test_recipe_index_changes_the_recipe_on_a_worker_with_busy_up(probe):
    line = FakeLine()
    line.recipe_gate.clear()  # the change takes until the test lets it finish
    p = probe(line)
    p.until(Ready=True)
    p.hs.write("RecipeIndex", 2)
    p.until(Busy=True, Ready=False, Error=False)
    p.pulse("Trigger")  # during the change: refused
    assert wait_for(lambda: p.hs.signals().get("count_trigger_refused") == 1)
    line.recipe_gate.set()
    p.until(Busy=False, RecipeName="flange", RecipeIndexActive=2, RecipeVersion=4, ErrorCode=ErrorCode.TRIGGER_REFUSED)
    assert p.hs.signals()["count_recipe_changes"] == 1
    p.pulse("ResultAck")
    p.until(Ready=True, Error=False)
    assert line.requests == 0


def test_an_unknown_or_failing_recipe_index_is_an_error_and_the_recipe_stays(probe):
    line = FakeLine()
    p = probe(line)
    p.until(Ready=True)
    p.hs.write("RecipeIndex", 7)
    p.until(Error=True, ErrorCode=ErrorCode.RECIPE_UNKNOWN, Ready=True, RecipeName="shaft")
    p.hs.write("RecipeIndex", 0)  # no request
    line.recipe_error = RuntimeError("the model package is corrupt")
    p.hs.write("RecipeIndex", 2)
    p.until(ErrorCode=ErrorCode.RECIPE_FAILED, Busy=False, RecipeName="shaft")
    line.recipe_error = None
    p.hs.write("RecipeIndex", 1)  # the recipe in force: nothing to do
    p.hs.write("RecipeIndex", 2)
    p.until(RecipeName="flange", Error=False)  # a successful change clears the recipe error


def test_a_recipe_index_written_while_busy_waits_for_the_part_and_its_ack(probe):
    line = FakeLine()
    p = probe(line)
    p.until(Ready=True)
    p.pulse("Trigger")
    p.until(Busy=True)
    p.hs.write("RecipeIndex", 2)
    p.hs.on_result(part(1))
    p.until(ResultReady=True, PartSeq=1)
    assert p.line.recipe.name == "shaft"  # the result's recipe signals stay that part's until its ResultAck
    p.pulse("ResultAck")
    p.until(RecipeName="flange", ResultReady=False)
    changes = p.changes()
    assert changes.index(("PartSeq", 1)) < changes.index(("RecipeName", "flange"))  # the part's result first


def test_lot_id_goes_to_the_line(probe):
    p = probe()
    p.hs.write("LotId", "L-2026-11-28")
    p.hs.write("LotId", "L-2026-11-28")  # unchanged: not set again
    p.hs.write("LotId", "L2")
    assert wait_for(lambda: p.line.lots == ["L-2026-11-28", "L2"])


def test_results_without_a_trigger_are_published_in_order_one_per_ack(probe):
    p = probe()  # a hardware-triggered recipe: the sensor triggers the camera
    p.until(Ready=True)
    for seq in (1, 2, 3):
        p.hs.on_result(part(seq, Verdict.NG if seq == 2 else Verdict.OK))
    p.until(ResultReady=True, PartSeq=1, ResultOK=True, Ready=False)
    seen = []
    for seq in (1, 2, 3):
        p.until(ResultReady=True, PartSeq=seq)
        seen.append((p.v("PartSeq"), p.v("ResultNG")))
        p.hs.write("ResultAck", True)
        p.until(ResultReady=False)
        p.hs.write("ResultAck", False)
    assert seen == [(1, False), (2, True), (3, False)]
    p.until(Ready=True)


def test_a_trigger_without_a_result_times_out(probe):
    p = probe(result_timeout_s=0.2)
    p.until(Ready=True)
    p.pulse("Trigger")
    p.until(Busy=True)
    p.until(Busy=False, Error=True, ErrorCode=ErrorCode.RESULT_TIMEOUT, Ready=True)
    assert p.line.cancels == 1  # the request that never fired is dropped: it cannot answer the next trigger
    p.pulse("ResultAck")
    p.until(Error=False)


def test_the_recipe_signals_follow_a_changeover_the_plc_did_not_ask_for(probe):
    p = probe()
    p.until(Ready=True, RecipeName="shaft", RecipeIndexActive=1)
    p.line.change_setup("flange", 2, 7)  # the operator changed it in the window
    p.until(RecipeName="flange", RecipeIndexActive=2, RecipeVersion=7)


def test_heartbeat_toggles(probe):
    p = probe(heartbeat_s=0.05)
    assert wait_for(lambda: sum(1 for k, _ in p.changes() if k == "Heartbeat") >= 3, 10)
    beats = [v for k, v in p.changes() if k == "Heartbeat"]
    assert all(a != b for a, b in itertools.pairwise(beats))


def test_inputs_are_coerced_and_outputs_are_not_writable(probe):
    p = probe()
    p.hs.write("RecipeIndex", 2.0)
    p.until(RecipeIndex=2, RecipeIndexActive=2)
    with pytest.raises(ValueError):
        p.hs.write("Ready", True)


def write_config(tmp_path, text: str):
    path = tmp_path / "station.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_plc_is_off_by_default_and_start_plc_opens_nothing():
    config = load_config()
    assert config.plc == PlcConfig() and not config.plc.enabled and config.plc.host == ""
    assert start_plc(FakeLine(), config.plc) is None


@pytest.mark.parametrize(
    "text, words",
    [
        ("[plc]\nenabled = true\n", "plc.host"),
        ('[plc]\nenabled = true\nhost = "  "\n', "plc.host"),
        ('[plc]\nenabled = true\nhost = "10.0.0.1; rm"\n', "plc.host"),
        ('[plc]\nprotocol = "profinet"\n', "plc.protocol"),
        ("[plc]\nport = 70000\n", "plc.port"),
        ("[plc]\nheartbeat_s = 0.0\n", "plc.heartbeat_s"),
        ("[plc]\nresult_timeout_s = nan\n", "plc.result_timeout_s"),
        ('[plc]\nnamespace = ""\n', "plc.namespace"),
        ("[plc]\nenable = true\n", "plc.enable"),
    ],
)
def test_bad_plc_config_is_one_sentence(tmp_path, text, words):
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, text))
    message = str(err.value)
    assert words in message and message.endswith(".") and "\n" not in message


def test_plc_config_is_read(tmp_path):
    plc = load_config(
        write_config(tmp_path, '[plc]\nenabled = true\nprotocol = "modbus"\nhost = "192.168.0.10"\nheartbeat_s = 0.5\n')
    ).plc
    assert plc == PlcConfig(enabled=True, protocol="modbus", host="192.168.0.10", heartbeat_s=0.5)
    assert plc.bind_port == 5020
    assert PlcConfig(enabled=True, host="127.0.0.1", port=4841).bind_port == 4841
