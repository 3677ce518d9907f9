"""What the PLC link needs of the line, as protocols: the line (`inspection.line.Line`) satisfies them
without this room importing it (the line is the composition root above), and a test's fake line can too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from inspection.result import InspectionResult
from inspection.runtime.events import Subscriber


class TriggerGateLike(Protocol):
    """The software trigger's gate: a PLC's Trigger requests one part; a timed-out request is cancelled."""

    def request(self) -> None: ...

    def cancel(self) -> None: ...


class RecipeLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def index(self) -> int: ...


class SetupLike(Protocol):
    """What the line runs (replaced whole by a changeover): its recipe and the recipe's version."""

    @property
    def recipe(self) -> RecipeLike: ...

    @property
    def recipe_version(self) -> int: ...


class RunStatusLike(Protocol):
    """A run's status as far as the PLC shows it (see `signals.line_error`)."""

    @property
    def state(self) -> str: ...  # a RunnerState value: "idle", "running", "paused", "stopping", "faulted"

    @property
    def fault(self) -> str: ...

    @property
    def reconnecting(self) -> bool: ...


class EventSource(Protocol):
    """The line's event hub (`inspection.runtime.events.EventHub`)."""

    def subscribe(self, fn: Subscriber) -> Callable[[], None]: ...


class PlcLine(Protocol):
    """What the handshake and the link use of the line."""

    @property
    def setup(self) -> SetupLike: ...

    @property
    def trigger_gate(self) -> TriggerGateLike | None: ...

    @property
    def events(self) -> EventSource: ...

    def status(self) -> RunStatusLike | None: ...

    def set_lot(self, lot_id: str) -> None: ...

    def change_recipe_index(self, index: int) -> None: ...

    def add_result_listener(self, fn: Callable[[InspectionResult], None]) -> None: ...
