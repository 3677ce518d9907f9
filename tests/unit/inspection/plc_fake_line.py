"""A fake line for the PLC handshake's tests: what the handshake uses of `inspection.line.Line`
(`inspection.plant.line_view.PlcLine`), publishing its state changes as the line does."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import SimpleNamespace

from inspection.errors import ConfigError
from inspection.result import Verdict
from inspection.runtime.events import EventHub, RunStateChanged, SetupChanged
from inspection.runtime.status import RunnerState


class FakeLine:
    """What the handshake uses of inspection.line.Line (`inspection.plant.line_view.PlcLine`): its state
    is set through `run_state` and `change_setup`, which publish the events the line publishes."""

    def __init__(self, state: RunnerState = RunnerState.RUNNING) -> None:
        self.events = EventHub()
        self.recipe = SimpleNamespace(name="shaft", index=1)
        self.recipe_version = 3
        self.recipes = {1: "shaft", 2: "flange"}
        self.state = state
        self.fault = ""
        self.reconnecting = False
        self.requests = 0
        self.cancels = 0
        self.trigger_gate = SimpleNamespace(request=self._request, cancel=self._cancel)
        self.lots: list[str] = []
        self.listeners: list = []
        self.recipe_gate = threading.Event()
        self.recipe_gate.set()
        self.recipe_error: Exception | None = None
        self.inspect: Callable[[int], SimpleNamespace] | None = None  # answers each request with a part (seq 1, 2, ...)

    @property
    def setup(self):
        return SimpleNamespace(recipe=self.recipe, recipe_version=self.recipe_version)

    def _request(self) -> None:
        self.requests += 1
        if self.inspect is not None:  # (on a thread of its own, as the inspection thread answers)
            result = self.inspect(self.requests)
            threading.Thread(target=lambda: [fn(result) for fn in self.listeners], daemon=True).start()

    def _cancel(self) -> None:
        self.cancels += 1

    def status(self):
        return SimpleNamespace(state=self.state, fault=self.fault, reconnecting=self.reconnecting)

    def run_state(self, state: RunnerState, fault: str = "", reconnecting: bool = False) -> None:
        """The run changed state (the runner publishes it)."""
        self.state, self.fault, self.reconnecting = state, fault, reconnecting
        self.events.publish(RunStateChanged(1, state.value))

    def change_setup(self, name: str, index: int, version: int) -> None:
        """A changeover (the operator's or the PLC's): the line publishes the new setup."""
        self.recipe = SimpleNamespace(name=name, index=index)
        self.recipe_version = version
        self.events.publish(SetupChanged(name, version, 1))

    def change_recipe_index(self, index: int) -> None:
        self.recipe_gate.wait(30)
        if self.recipe_error is not None:
            raise self.recipe_error
        if index not in self.recipes:
            raise ConfigError(f"No recipe has index {index}.")
        self.change_setup(self.recipes[index], index, self.recipe_version + 1)

    def set_lot(self, lot_id: str) -> None:
        self.lots.append(lot_id)

    def add_result_listener(self, fn) -> None:
        self.listeners.append(fn)


def part(seq: int, verdict: Verdict = Verdict.OK, score: float = 0.1, classes=(), view: int = 0, part_verdict=None):
    return SimpleNamespace(
        part_id=f"{seq:032x}",
        seq=seq,
        score=score,
        verdict=verdict,
        part_verdict=part_verdict,
        classes=tuple(classes),
        view=view,
    )
