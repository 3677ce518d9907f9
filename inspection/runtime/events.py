"""State changes the core pushes: a run's state, the line's setup (after a changeover), alarms.

The core publishes a frozen `LineEvent` on the thread where the change happens; each subscriber is
called there, so it must not block (hand the event to its own thread or queue: the window posts it
to the GUI thread, the PLC handshake to its own). A subscriber's exception is logged and never
stops the publisher. What changes continuously (the newest image, the counters) is still pulled.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RunStateChanged:
    """A run changed state: `state` is a `RunnerState` value ("running", "paused", "stopped", ...)."""

    run_id: int
    state: str
    message: str = ""


@dataclasses.dataclass(frozen=True)
class SetupChanged:
    """What the line runs changed (a changeover): the recipe, its version and the model's id in the record."""

    recipe: str
    recipe_version: int
    model_version_id: int


@dataclasses.dataclass(frozen=True)
class AlarmChanged:
    """An alarm was raised (`active`) or acknowledged (not `active`)."""

    kind: str
    message: str
    active: bool


LineEvent = RunStateChanged | SetupChanged | AlarmChanged
Subscriber = Callable[[LineEvent], None]


class EventHub:
    """Subscribers and the one `publish` the core calls; thread-safe."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Call `fn` with every event from now on; returns the function that unsubscribes it."""
        with self._lock:
            self._subscribers = [*self._subscribers, fn]

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = [s for s in self._subscribers if s is not fn]

        return unsubscribe

    def publish(self, event: LineEvent) -> None:
        for fn in self._subscribers:  # (a copy replaced whole on every change: no lock held while calling)
            try:
                fn(event)
            except Exception:
                log.exception("an event subscriber failed on %s", type(event).__name__)
