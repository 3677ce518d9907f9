"""The PLC handshake's signals: their names, kinds and directions, the ErrorCode values, and how a
line's state and a part's result become signal values. What every transport serves (OPC UA variables,
Modbus registers) is this table.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any

from inspection.plant.line_view import RunStatusLike
from inspection.result import InspectionResult, Verdict

STRING_CHARS = 32  # strings longer than this are cut (Modbus holds this many per string)


class Kind(enum.StrEnum):
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
KINDS = {s.name: s.kind for s in SIGNALS}


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


def line_error(status: RunStatusLike | None) -> ErrorCode:
    """The ErrorCode of a runner status (None: no run yet)."""
    if status is None:
        return ErrorCode.NOT_RUNNING
    if status.reconnecting:
        return ErrorCode.CAMERA_LOST
    if status.state == "running":
        return ErrorCode.NONE
    if status.state == "paused":
        return ErrorCode.PAUSED
    if status.state == "faulted":
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


def zero(kind: Kind) -> Any:
    return {Kind.BOOL: False, Kind.INT: 0, Kind.FLOAT: 0.0, Kind.STR: ""}[kind]


def coerce(kind: Kind, value: Any) -> Any:
    if kind is Kind.BOOL:
        return bool(value)
    if kind is Kind.INT:
        return int(value)
    if kind is Kind.FLOAT:
        return float(value)
    return str(value)[:256]
