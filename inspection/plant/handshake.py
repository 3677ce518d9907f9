"""The PLC handshake: the signals a PLC exchanges with the station, independent of the transport
(OPC UA in `inspection.plc_opcua`, Modbus TCP in `inspection.plc_modbus`).

`Handshake` owns the signal values and one thread ("lepton-plc-handshake") that applies the PLC's
writes, the line's results, the line's state and the heartbeat in order; a recipe change runs on a
thread of its own ("lepton-plc-recipe"). The transport hands client writes to `Handshake.write` and
receives output changes, in the order they must be seen, through the `publish` callback.

Off unless `[plc] enabled = true` with a `host`: nothing listens without configuration.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from inspection.errors import ConfigError, InspectionError
from inspection.result import InspectionResult, Verdict
from inspection.settings.plc import PlcConfig

if TYPE_CHECKING:
    from inspection.line import Line

log = logging.getLogger(__name__)

MAX_RESULT_QUEUE = 64  # results waiting for ResultAck (hardware trigger); beyond this the oldest is dropped
TICK_S = 0.05  # the line's state is polled this often
RECIPE_CHANGE_JOIN_S = 120.0  # what closing waits for a recipe change in progress (a model loading)
STRING_CHARS = 32  # strings longer than this are cut (Modbus holds this many per string)


class PlcError(InspectionError):
    """The PLC link cannot start (its address cannot be bound)."""








class Kind(str, enum.Enum):
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    STR = "str"


@dataclasses.dataclass(frozen=True)
class Signal:
    name: str
    kind: Kind
    output: bool  # True: station -> PLC; False: PLC -> station
    doc: str


SIGNALS: tuple[Signal, ...] = (
    Signal("Trigger", Kind.BOOL, False, "rising edge: image and inspect one part (accepted while Ready)"),
    Signal(
        "ResultAck",
        Kind.BOOL,
        False,
        "rising edge: the PLC has read the result (also clears a latched handshake error)",
    ),
    Signal("RecipeIndex", Kind.INT, False, "the recipe to run (its `index`); 0: no request"),
    Signal("LotId", Kind.STR, False, "rows recorded after a change carry this lot id"),
    Signal("Ready", Kind.BOOL, True, "a Trigger would be accepted now"),
    Signal("Busy", Kind.BOOL, True, "a triggered part is being inspected, or a recipe change is in progress"),
    Signal("ResultReady", Kind.BOOL, True, "the result signals below hold a part's result until ResultAck"),
    Signal("ResultOK", Kind.BOOL, True, "the part passed"),
    Signal("ResultNG", Kind.BOOL, True, "the part must be rejected (NG, or REVIEW: not proven good)"),
    Signal("DefectClass", Kind.STR, True, '"" (OK), the defect classes joined by "," (NG), "review" (REVIEW)'),
    Signal("Score", Kind.FLOAT, True, "the part's anomaly score; -1 when the model failed"),
    Signal("PartId", Kind.STR, True, "the part's id in the record (32 hex digits)"),
    Signal("PartSeq", Kind.INT, True, "the part's number in the current run (1, 2, ...)"),
    Signal("Error", Kind.BOOL, True, "ErrorCode is not 0"),
    Signal("ErrorCode", Kind.INT, True, "see ErrorCode"),
    Signal("Heartbeat", Kind.BOOL, True, "toggles every plc.heartbeat_s while the station is alive"),
    Signal("RecipeName", Kind.STR, True, "the recipe in force"),
    Signal("RecipeIndexActive", Kind.INT, True, "the index of the recipe in force"),
    Signal("RecipeVersion", Kind.INT, True, "the version of the recipe in force"),
)
INPUTS = tuple(s.name for s in SIGNALS if not s.output)
_KINDS = {s.name: s.kind for s in SIGNALS}


class ErrorCode(enum.IntEnum):
    """ErrorCode values. 1-9 follow the line's state (cleared when it recovers); 10-29 are handshake
    errors, latched until the next ResultAck rising edge or accepted Trigger (20 and 21 also by a
    successful recipe change). A line condition is shown before a latched handshake error."""

    NONE = 0
    NOT_RUNNING = 1  # no run: stopped by the operator, or never started
    PAUSED = 2
    CAMERA_FAULT = 3  # the camera failed and the run stopped
    CAMERA_LOST = 4  # the camera was lost and is being reconnected (the run goes on once it is back)
    RECORD_FAULT = 5  # results could not be written to the record
    INSPECTION_FAULT = 6  # the model failed
    TRIGGER_OVERRUN = 10  # Trigger rose while Busy or before ResultAck: ignored, no part imaged
    TRIGGER_REFUSED = 11  # Trigger rose while the line was not ready (no run, fault, recipe change): ignored
    RESULT_TIMEOUT = 12  # no result within plc.result_timeout_s of an accepted Trigger (the part was lost)
    RESULT_OVERFLOW = 13  # more than 64 results waited for ResultAck: the oldest was dropped
    RECIPE_UNKNOWN = 20  # RecipeIndex names no recipe
    RECIPE_FAILED = 21  # the recipe change failed (see the event log)


_FAULTS = {"camera": ErrorCode.CAMERA_FAULT, "record": ErrorCode.RECORD_FAULT, "inspection": ErrorCode.INSPECTION_FAULT}


def line_error(status: Any) -> ErrorCode:
    """The ErrorCode of a runner status (None: no run yet)."""
    if status is None:
        return ErrorCode.NOT_RUNNING
    if status.reconnecting:
        return ErrorCode.CAMERA_LOST
    state = str(getattr(status.state, "value", status.state))
    if state == "running":
        return ErrorCode.NONE
    if state == "paused":
        return ErrorCode.PAUSED
    if state == "faulted":
        return _FAULTS.get(status.fault, ErrorCode.INSPECTION_FAULT)
    return ErrorCode.NOT_RUNNING  # idle, stopping


def result_signals(result: InspectionResult) -> dict[str, Any]:
    """A part's result signals, in the order they are published (ResultReady last)."""
    verdict = result.part_verdict or result.verdict
    if verdict is Verdict.OK:
        defect = ""
    elif verdict is Verdict.NG:
        defect = ",".join(c.name for c in result.classes) or "defect"
    else:
        defect = "review"  # a part not proven good is rejected
    score = float(result.score)
    return {
        "DefectClass": defect,
        "Score": score if math.isfinite(score) else -1.0,
        "PartId": result.part_id,
        "PartSeq": int(result.seq),
        "ResultOK": verdict is Verdict.OK,
        "ResultNG": verdict is not Verdict.OK,
        "ResultReady": True,
    }


class TriggerGateLike(Protocol):
    def request(self) -> None: ...

    def cancel(self) -> None: ...


Publish = Callable[[dict[str, Any]], None]


class Handshake:
    """The signal values and the rules between them; thread-safe entry points: `write`, `on_result`, `signals`."""

    def __init__(self, line: Line, config: PlcConfig) -> None:
        self.line = line
        self.config = config
        self._lock = threading.Lock()  # guards _values and counters for signals()
        self._values: dict[str, Any] = {s.name: _zero(s.kind) for s in SIGNALS}
        self._values.update(self._recipe_signals())
        self._values["RecipeIndex"] = self._values["RecipeIndexActive"]
        self._counters: collections.Counter[str] = collections.Counter()
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._publish: Publish = lambda changes: None
        self._changes: dict[str, Any] = {}
        self._pending = 0  # accepted Triggers waiting for their part's result
        self._pending_since = 0.0
        self._waiting: collections.deque[dict[str, Any]] = collections.deque()  # results waiting for ResultAck
        self._recipe_wanted: int | None = None
        self._recipe_changing = False
        self._latched = ErrorCode.NONE
        self._line_error = ErrorCode.NOT_RUNNING
        self._thread: threading.Thread | None = None
        self._closed = False
        self._changer: threading.Thread | None = None  # a recipe change in progress (its own thread)

    # -- thread-safe entry points

    def start(self, publish: Publish) -> None:
        """Start the handshake thread; `publish` receives every change of outputs, in order, on that thread."""
        self._publish = publish
        self._thread = threading.Thread(target=self._run, name="lepton-plc-handshake", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the handshake thread, after a recipe change in progress has finished (the line is
        closed after this: a change must not outlive it)."""
        self._closed = True
        self._events.put(("stop", None))
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        changer = self._changer
        if changer is not None:
            changer.join(timeout=RECIPE_CHANGE_JOIN_S)

    def write(self, name: str, value: Any) -> None:
        """A PLC wrote an input (any thread; never blocks)."""
        if name not in INPUTS:
            raise ValueError(f"{name} is not a PLC input")
        self._events.put(("input", (name, _coerce(_KINDS[name], value))))

    def on_result(self, result: InspectionResult) -> None:
        """The line's result listener (inspection thread; never blocks): the first view of each part."""
        if result.view == 0 and not self._closed:
            self._events.put(("result", result_signals(result)))  # (the result's images are not held)

    def signals(self) -> dict[str, Any]:
        """A snapshot of every signal and the counters (for display)."""
        with self._lock:
            return {**self._values, **{f"count_{k}": v for k, v in sorted(self._counters.items())}}

    def values(self) -> dict[str, Any]:
        """Every signal's current value (no counters)."""
        with self._lock:
            return dict(self._values)

    # -- the handshake thread

    def _run(self) -> None:
        next_beat = time.monotonic() + self.config.heartbeat_s
        next_poll = 0.0
        while True:
            now = time.monotonic()
            try:
                kind, data = self._events.get(timeout=max(0.0, min(next_beat, next_poll) - now))
            except queue.Empty:
                kind, data = "", None
            if kind == "stop":
                return
            try:
                if kind == "input":
                    self._on_input(*data)
                elif kind == "result":
                    self._on_part(data)
                elif kind == "recipe_done":
                    self._on_recipe_done(*data)
                now = time.monotonic()
                if now >= next_beat:
                    self._set("Heartbeat", not self._values["Heartbeat"])
                    next_beat += self.config.heartbeat_s
                    if next_beat <= now:  # (fell behind: no burst of toggles)
                        next_beat = now + self.config.heartbeat_s
                if now >= next_poll or kind:
                    if now >= next_poll:
                        self._line_error = line_error(self.line.status())
                        if not self._recipe_changing:  # (the operator may change the recipe too)
                            for key, value in self._recipe_signals().items():
                                self._set(key, value)
                        next_poll = now + TICK_S
                    self._update(now)
            except Exception:  # a bug or a line call that failed must not stop the heartbeat for good
                log.exception("PLC handshake step failed")
            self._flush()

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
        gate: TriggerGateLike | None = getattr(self.line, "trigger_gate", None)
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
            self._events.put(("recipe_done", (index, error, unknown)))

        self._changer = threading.Thread(target=change, name="lepton-plc-recipe", daemon=True)
        self._changer.start()

    def _update(self, now: float) -> None:
        """Outputs that follow from the state: a timed-out trigger, the recipe request, the next result, Ready, Error."""
        if self._pending and now - self._pending_since > self.config.result_timeout_s:
            self._pending = 0
            gate: TriggerGateLike | None = getattr(self.line, "trigger_gate", None)
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


def _zero(kind: Kind) -> Any:
    return {Kind.BOOL: False, Kind.INT: 0, Kind.FLOAT: 0.0, Kind.STR: ""}[kind]


def _coerce(kind: Kind, value: Any) -> Any:
    if kind is Kind.BOOL:
        return bool(value)
    if kind is Kind.INT:
        return int(value)
    if kind is Kind.FLOAT:
        return float(value)
    return str(value)[:256]


class PlcServer:
    """A server on its own thread and asyncio loop; `start` and `close` from the caller's thread.
    Subclasses serve in `_serve` (calling `self._started.set()` once listening, returning when
    `_stopping()` was called on the loop) and say what they are in `what`."""

    what = "server"  # e.g. "OPC UA server"
    thread_name = "lepton-plc"
    START_TIMEOUT_S = 60.0
    endpoint: str

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        """Listen; PlcError (one sentence) when the address cannot be bound."""
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        if not self._started.wait(self.START_TIMEOUT_S):
            raise PlcError(f"The {self.what} for the PLC did not start within {self.START_TIMEOUT_S:g} s.")
        if self._error is not None:
            self._thread.join()
            raise PlcError(f"The {self.what} for the PLC cannot listen on {self.endpoint}: {self._why(self._error)}.")

    def publish(self, changes: dict[str, Any]) -> None:
        """Output changes (any thread; never blocks), applied in order on the server's loop."""
        self._on_loop(self._apply, changes)

    def close(self) -> None:
        """Stop serving; the port is free when this returns."""
        self._on_loop(self._stopping)
        if self._thread is not None:
            self._thread.join(timeout=30.0)

    def _on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:  # the loop has just closed
                pass

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start(), which raises it as one sentence
            self._error = exc
            if not self._started.is_set():
                self._started.set()
            else:
                log.exception("the %s for the PLC failed", self.what)
        finally:
            loop.close()

    def _why(self, exc: BaseException) -> str:
        """Why it could not listen, in a few words."""
        if isinstance(exc, OSError) and exc.errno:
            return os.strerror(exc.errno).lower()
        return str(exc).rstrip(".") or type(exc).__name__

    async def _serve(self) -> None:
        raise NotImplementedError

    def _apply(self, changes: dict[str, Any]) -> None:
        """(on the loop) Output changes."""
        raise NotImplementedError

    def _stopping(self) -> None:
        """(on the loop) End `_serve`."""
        raise NotImplementedError




