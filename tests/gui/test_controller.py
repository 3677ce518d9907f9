"""The controller's jobs run one at a time, in order: a Start pressed the moment the line is ready
is not lost while the opening job is still winding up (it was, and left the window stuck)."""

from __future__ import annotations

import threading
import time

from PySide6.QtCore import QObject, Qt

from app.gui.controller import LineController
from inspection.access import users
from inspection.line import Setup
from inspection.record.opening import open_record
from inspection.runtime.events import EventHub
from inspection.runtime.status import RunnerState
from inspection.runtime.verdict import thresholds_in_force
from inspection.settings.config import load_config
from inspection.settings.recipe import load_recipe
from tests.fakes import FakeInspector


class _Runner:
    run_id = 7

    def status(self):
        return type("S", (), {"state": RunnerState.RUNNING, "message": ""})()


class _Line:
    """Stands in for inspection.line.Line: only what the controller calls."""

    def __init__(self, store) -> None:
        self.store = store  # a real one: the controller checks the user's permission in it
        self.runner = None
        self.started_in = None
        self.recipe = load_recipe()
        self.inspector = FakeInspector()
        self.base_config = load_config()  # (the recipes folder)
        self.setup = Setup(
            self.recipe, None, self.inspector, thresholds_in_force(self.recipe, self.inspector.info), 1, 1
        )
        self.changing = False
        self.events = EventHub()

    def add_result_listener(self, listener) -> None:
        pass

    def start(self):
        self.started_in = threading.current_thread().name
        self.runner = _Runner()
        return self.runner

    def close(self) -> None:
        pass


class _Operator(QObject):
    """Presses Start the moment the line is ready (a bound method of a QObject: it runs on the GUI thread)."""

    def __init__(self, controller: LineController, user: users.User) -> None:
        super().__init__()
        self.controller, self.user = controller, user

    def start(self, _choices) -> None:
        self.controller.start(self.user)


def test_start_right_after_ready_is_queued_not_dropped(qtbot, tmp_path):
    store = open_record(tmp_path / "c.db")
    admin = users.create_first_admin(store, "admin", "a-long-password")
    users.create_user(store, admin, "op", "operator", "a-long-password")
    line = _Line(store)
    controller = LineController(lambda spec, recipe: line, "sim:unused")
    # Hold the worker after the opening job's `ready` (as a slow thread exit would), so that the
    # GUI thread's Start lands while that job is still running.
    controller.busy.connect(lambda what: time.sleep(0.3) if not what else None, Qt.ConnectionType.DirectConnection)
    operator = _Operator(controller, users.authenticate(store, "op", "a-long-password"))
    controller.ready.connect(operator.start)
    with qtbot.waitSignal(controller.started, timeout=10_000) as started:
        controller.open()
    assert started.args == [7] and line.started_in == "lepton-gui-job"
    with qtbot.waitSignal(controller.closed, timeout=10_000):
        controller.close_line()
    assert controller.line is None
    store.close()
