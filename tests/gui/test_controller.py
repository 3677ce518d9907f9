"""The controller's jobs run one at a time, in order: a Start pressed the moment the line is ready
is not lost while the opening job is still winding up (it was, and left the window stuck)."""

from __future__ import annotations

import threading
import time

from PySide6.QtCore import Qt

from app.gui.controller import LineController
from inspection.config import load_recipe
from inspection.runner import RunnerState
from tests.fakes import FakeInspector


class _Runner:
    run_id = 7

    def status(self):
        return type("S", (), {"state": RunnerState.RUNNING, "message": ""})()


class _Line:
    """Stands in for inspection.line.Line: only what the controller calls."""

    def __init__(self) -> None:
        self.runner = None
        self.started_in = None
        self.recipe = load_recipe()
        self.inspector = FakeInspector()

    def add_result_listener(self, listener) -> None:
        pass

    def start(self):
        self.started_in = threading.current_thread().name
        self.runner = _Runner()
        return self.runner

    def close(self) -> None:
        pass


def test_start_right_after_ready_is_queued_not_dropped(qtbot):
    line = _Line()
    controller = LineController(lambda spec, recipe: line, "sim:unused")
    # Hold the worker after the opening job's `ready` (as a slow thread exit would), so that the
    # GUI thread's Start lands while that job is still running.
    controller.busy.connect(lambda what: time.sleep(0.3) if not what else None, Qt.ConnectionType.DirectConnection)
    controller.ready.connect(controller.start)
    with qtbot.waitSignal(controller.started, timeout=10_000) as started:
        controller.open()
    assert started.args == [7] and line.started_in == "lepton-gui-job"
    with qtbot.waitSignal(controller.closed, timeout=10_000):
        controller.close_line()
    assert controller.line is None
