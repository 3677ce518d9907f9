"""The PLC handshake: the signals a PLC exchanges with the station (`inspection.plant.signals`),
independent of the transport (OPC UA in `inspection.plant.opcua`, Modbus TCP in `inspection.plant.modbus`).

`Handshake` owns the signal values and one thread ("lepton-plc-handshake") that applies the PLC's
writes, the line's results, the line's events and the heartbeat in order; a recipe change runs on a
thread of its own ("lepton-plc-recipe"). The line pushes its state changes (`RunStateChanged`,
`SetupChanged`) through its event hub; the handshake's subscriber only hands them to its thread, which
then reads the line's status. What is timed is pulled by the clock: the heartbeat and a result's
timeout. The transport hands client writes to `Handshake.write` and receives output changes, in the
order they must be seen, through the `publish` callback.

Off unless `[plc] enabled = true` with a `host`: nothing listens without configuration.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from inspection.errors import ConfigError
from inspection.plant.line_view import PlcLine
from inspection.plant.signals import INPUTS, KINDS, SIGNALS, ErrorCode, coerce, line_error, result_signals, zero
from inspection.result import InspectionResult
from inspection.runtime.events import LineEvent, RunStateChanged, SetupChanged
from inspection.settings.plc import PlcConfig

log = logging.getLogger(__name__)

MAX_RESULT_QUEUE = 64  # results waiting for ResultAck (hardware trigger); beyond this the oldest is dropped
RECHECK_S = 0.05  # a run state event the line's status does not show yet is read again this often
RECHECK_FOR_S = 2.0  # ... for at most this long (a newer event answers it otherwise)
RECIPE_CHANGE_JOIN_S = 120.0  # what closing waits for a recipe change in progress (a model loading)

Publish = Callable[[dict[str, Any]], None]


class Handshake:
    """The signal values and the rules between them; thread-safe entry points: `write`, `on_result`, `signals`."""

    def __init__(self, line: PlcLine, config: PlcConfig) -> None:
        self.line = line
        self.config = config
        self._lock = threading.Lock()  # guards _values and counters for signals()
        self._values: dict[str, Any] = {s.name: zero(s.kind) for s in SIGNALS}
        self._values.update(self._recipe_signals())
        self._values["RecipeIndex"] = self._values["RecipeIndexActive"]
        self._counters: collections.Counter[str] = collections.Counter()
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()  # what the handshake thread applies, in order
        self._publish: Publish = lambda changes: None
        self._changes: dict[str, Any] = {}
        self._pending = 0  # accepted Triggers waiting for their part's result
        self._pending_since = 0.0
        self._waiting: collections.deque[dict[str, Any]] = collections.deque()  # results waiting for ResultAck
        self._recipe_wanted: int | None = None
        self._recipe_changing = False
        self._latched = ErrorCode.NONE
        self._line_error = ErrorCode.NOT_RUNNING
        self._run_state: RunStateChanged | None = None  # the last run state event, until the status shows it
        self._recheck_at = 0.0  # when the status is read again for it (0: not)
        self._recheck_until = 0.0
        self._unsubscribe: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._changer: threading.Thread | None = None  # a recipe change in progress (its own thread)

    # -- thread-safe entry points

    def start(self, publish: Publish) -> None:
        """Start the handshake thread; `publish` receives every change of outputs, in order, on that thread."""
        self._publish = publish
        self._unsubscribe = self.line.events.subscribe(self._on_line_event)
        self._inbox.put(("line", None))  # the line's state as it is now (after subscribing: no change is missed)
        self._thread = threading.Thread(target=self._run, name="lepton-plc-handshake", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the handshake thread, after a recipe change in progress has finished (the line is
        closed after this: a change must not outlive it)."""
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._inbox.put(("stop", None))
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        changer = self._changer
        if changer is not None:
            changer.join(timeout=RECIPE_CHANGE_JOIN_S)

    def write(self, name: str, value: Any) -> None:
        """A PLC wrote an input (any thread; never blocks)."""
        if name not in INPUTS:
            raise ValueError(f"{name} is not a PLC input")
        self._inbox.put(("input", (name, coerce(KINDS[name], value))))

    def on_result(self, result: InspectionResult) -> None:
        """The line's result listener (inspection thread; never blocks): the first view of each part."""
        if result.view == 0 and not self._closed:
            self._inbox.put(("result", result_signals(result)))  # (the result's images are not held)

    def signals(self) -> dict[str, Any]:
        """A snapshot of every signal and the counters (for display)."""
        with self._lock:
            return {**self._values, **{f"count_{k}": v for k, v in sorted(self._counters.items())}}

    def values(self) -> dict[str, Any]:
        """Every signal's current value (no counters)."""
        with self._lock:
            return dict(self._values)

    def _on_line_event(self, event: LineEvent) -> None:
        """The line's event subscriber (the publisher's thread; never blocks): handed to the handshake thread."""
        if isinstance(event, (RunStateChanged, SetupChanged)) and not self._closed:
            self._inbox.put(("line", event))

    # -- the handshake thread

    def _run(self) -> None:
        """The handshake thread: each item of the inbox in order, else wakes for what is timed; then the
        outputs that follow, published together."""
        next_beat = time.monotonic() + self.config.heartbeat_s
        while True:
            wake = min(next_beat, self._next_deadline())
            try:
                kind, data = self._inbox.get(timeout=max(0.0, wake - time.monotonic()))
            except queue.Empty:
                kind, data = "", None  # a timer: the heartbeat, a result's timeout, a status read again
            if kind == "stop":
                return
            try:
                self._apply(kind, data)
                now = time.monotonic()
                if now >= next_beat:
                    self._set("Heartbeat", not self._values["Heartbeat"])
                    next_beat += self.config.heartbeat_s
                    if next_beat <= now:  # (fell behind: no burst of toggles)
                        next_beat = now + self.config.heartbeat_s
                if self._recheck_at and now >= self._recheck_at:
                    self._read_status(now)
                self._update(now)
            except Exception:  # a bug or a line call that failed must not stop the heartbeat for good
                log.exception("PLC handshake step failed")
            self._flush()

    def _apply(self, kind: str, data: Any) -> None:
        """One item of the inbox, on the handshake thread."""
        if kind == "input":
            self._on_input(*data)
        elif kind == "result":
            self._on_part(data)
        elif kind == "recipe_done":
            self._on_recipe_done(*data)
        elif kind == "line":
            self._on_line(data)

    def _next_deadline(self) -> float:
        """When the thread must wake without an event: a result's timeout, a status read again (inf: none)."""
        deadlines = [self._recheck_at] if self._recheck_at else []
        if self._pending:
            deadlines.append(self._pending_since + self.config.result_timeout_s)
        return min(deadlines, default=float("inf"))

    def _on_line(self, event: LineEvent | None) -> None:
        """The line's state changed (None: the state at start): the ErrorCode and recipe signals follow it."""
        if event is None or isinstance(event, RunStateChanged):
            self._run_state = event
            self._recheck_until = time.monotonic() + RECHECK_FOR_S
            self._read_status(time.monotonic())
        if (event is None or isinstance(event, SetupChanged)) and not self._recipe_changing:
            # (the operator may change the recipe too; a change the PLC asked for sets them when done)
            for key, value in self._recipe_signals().items():
                self._set(key, value)

    def _read_status(self, now: float) -> None:
        """The ErrorCode of the line's status; read again shortly while it does not show the last event's state yet
        (a run publishes its state from its own thread, maybe before the line has taken the run in)."""
        status = self.line.status()
        self._line_error = line_error(status)
        event = self._run_state
        behind = event is not None and (status is None or status.state != event.state)
        self._recheck_at = now + RECHECK_S if behind and now < self._recheck_until else 0.0

    def _set(self, name: str, value: Any) -> None:
        if self._values[name] != value or name in self._changes:
            with self._lock:
                self._values[name] = value
            self._changes.pop(name, None)
            self._changes[name] = value  # (re)inserted last: published in the order set

    def _flush(self) -> None:
        if self._changes:
            changes, self._changes = self._changes, {}
            try:
                self._publish(changes)
            except Exception:
                log.exception("PLC publish failed")

    def _latch(self, code: ErrorCode) -> None:
        self._latched = code
        self._count(code.name.lower())
        log.warning("PLC handshake error %d (%s)", code.value, code.name.lower())

    def _on_input(self, name: str, value: Any) -> None:
        old = self._values[name]
        with self._lock:
            self._values[name] = value
        if name == "Trigger" and value and not old:
            self._on_trigger()
        elif name == "ResultAck" and value and not old:
            self._count("acks")
            self._latched = ErrorCode.NONE
            if self._values["ResultReady"]:
                for key in ("ResultReady", "ResultOK", "ResultNG"):
                    self._set(key, False)
        elif name == "RecipeIndex" and value != old:
            self._recipe_wanted = value
        elif name == "LotId" and value != old:
            self.line.set_lot(value)
            log.info("PLC set lot %r", value)

    def _on_trigger(self) -> None:
        self._count("triggers")
        if not self._values["Ready"]:
            handshake_busy = self._pending or self._values["ResultReady"] or self._waiting
            self._latch(
                ErrorCode.TRIGGER_OVERRUN if handshake_busy and not self._recipe_changing else ErrorCode.TRIGGER_REFUSED
            )
            return
        self._latched = ErrorCode.NONE
        self._pending += 1
        self._pending_since = time.monotonic()
        for key in ("Ready", "ResultReady", "ResultOK", "ResultNG"):
            self._set(key, False)
        self._set("Busy", True)
        self._flush()  # Busy is up before the camera is asked
        gate = self.line.trigger_gate
        if gate is not None:
            gate.request()

    def _count(self, name: str) -> None:
        with self._lock:
            self._counters[name] += 1

    def _on_part(self, signals: dict[str, Any]) -> None:
        self._count("results")
        if self._pending:
            self._pending -= 1
        if len(self._waiting) >= MAX_RESULT_QUEUE:
            self._waiting.popleft()
            self._latch(ErrorCode.RESULT_OVERFLOW)
        self._waiting.append(signals)

    def _on_recipe_done(self, index: int, error: str, unknown: bool) -> None:
        self._recipe_changing = False
        if error:
            log.error("PLC recipe change to index %d failed: %s", index, error)
            self._latch(ErrorCode.RECIPE_UNKNOWN if unknown else ErrorCode.RECIPE_FAILED)
        else:
            self._count("recipe_changes")
            if self._latched in (ErrorCode.RECIPE_UNKNOWN, ErrorCode.RECIPE_FAILED):
                self._latched = ErrorCode.NONE
        for key, value in self._recipe_signals().items():
            self._set(key, value)

    def _recipe_signals(self) -> dict[str, Any]:
        """The recipe in force, as signals."""
        setup = self.line.setup  # (one read: a changeover replaces it whole)
        return {
            "RecipeName": setup.recipe.name,
            "RecipeIndexActive": setup.recipe.index,
            "RecipeVersion": setup.recipe_version,
        }

    def _start_recipe_change(self, index: int) -> None:
        """On its own thread: the recipes folder is read there (an unknown index is a ConfigError)."""
        self._recipe_changing = True
        log.info("PLC recipe change to index %d", index)

        def change() -> None:
            error, unknown = "", False
            try:
                self.line.change_recipe_index(index)
            except ConfigError as exc:
                error, unknown = str(exc), True
            except Exception as exc:
                error = str(exc) or type(exc).__name__
            self._inbox.put(("recipe_done", (index, error, unknown)))

        self._changer = threading.Thread(target=change, name="lepton-plc-recipe", daemon=True)
        self._changer.start()

    def _update(self, now: float) -> None:
        """Outputs that follow from the state: a timed-out trigger, the recipe request, the next result,
        Ready, Error."""
        if self._pending and now - self._pending_since >= self.config.result_timeout_s:
            self._pending = 0
            gate = self.line.trigger_gate
            if gate is not None:
                gate.cancel()  # (a request not yet fired never fires: its result would answer the next trigger)
            self._latch(ErrorCode.RESULT_TIMEOUT)
        wanted = self._recipe_wanted
        # (a change waits for the part in progress and for its result's ResultAck: the recipe signals
        # beside a result are that part's)
        if (
            wanted is not None
            and not self._pending
            and not self._recipe_changing
            and not self._waiting
            and not self._values["ResultReady"]
        ):
            self._recipe_wanted = None
            if wanted != 0 and wanted != self._values["RecipeIndexActive"]:
                self._start_recipe_change(wanted)
        v = self._values
        if self._waiting and not v["ResultReady"] and not v["ResultAck"]:
            for key, value in self._waiting.popleft().items():
                self._set(key, value)
        self._set("Busy", bool(self._pending) or self._recipe_changing)
        line_code = ErrorCode.NONE if self._recipe_changing else self._line_error
        code = line_code or self._latched
        self._set("ErrorCode", int(code))
        self._set("Error", code != ErrorCode.NONE)
        ready = (
            line_code == ErrorCode.NONE
            and not self._recipe_changing
            and not self._pending
            and not self._waiting
            and not v["ResultReady"]
            and not v["Trigger"]
            and not v["ResultAck"]
        )
        self._set("Ready", ready)
