"""Alarms: conditions an operator must see and acknowledge, each recorded in the event log.

An `AlarmMonitor` watches a line: every result (on the inspection thread, in constant time) and,
on its own thread every `interval_s`, the runner's status and the free disk space. A condition
that becomes true raises an alarm once (an `events` row, level "alarm"); it is raised again only
after the condition has cleared. An alarm stays active until acknowledged (`acknowledged_at` in
its row), also across a restart: unacknowledged alarms are read back from the record at start.
Database writes happen on the monitor's thread only, never on the inspection or GUI thread.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import logging
import queue
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select, update

from inspection.config import AlarmConfig
from inspection.result import InspectionResult, Verdict
from inspection.runner import RunnerState, RunnerStatus
from inspection.schema import Event
from inspection.store import Store, utcnow

log = logging.getLogger(__name__)

KINDS = ("camera", "model", "record", "consecutive_ng", "ng_rate", "disk", "dropped")


@dataclasses.dataclass(frozen=True)
class Alarm:
    event_id: int
    kind: str
    message: str
    raised_at: dt.datetime  # naive UTC, as stored


class AlarmMonitor:
    def __init__(self, store: Store, config: AlarmConfig, status: Callable[[], RunnerStatus | None], *,
                 disk_path: Path | None = None, interval_s: float = 0.5) -> None:
        self.store = store
        self.config = config
        self._status = status
        self.disk_path = disk_path or store.path.parent
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._active: dict[int, Alarm] = {}
        self._latched: set[str] = set()
        self._ng_in_a_row = 0
        self._recent_ng: collections.deque[bool] = collections.deque(maxlen=max(1, config.ng_rate_window))
        self._model_errors = 0  # parts the model failed on since the last check
        self._model_error = ""  # the last such failure
        self._lost_frames = 0  # dropped + failed at the last check (per run)
        self._run_id: int | None = None  # the run the status belongs to
        self._results_run: int | None = None  # the run of the last result
        self._acks: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._load_unacknowledged()

    # -- any thread ------------------------------------------------------------------------
    def active(self) -> tuple[Alarm, ...]:
        """Unacknowledged alarms, oldest first."""
        with self._lock:
            return tuple(sorted(self._active.values(), key=lambda a: a.event_id))

    def acknowledge(self, event_id: int | None = None) -> None:
        """Acknowledge one alarm (or all with None); it leaves `active()` at once, the record follows."""
        with self._lock:
            ids = list(self._active) if event_id is None else [event_id]
            for i in ids:
                self._active.pop(i, None)
        for i in ids:
            self._acks.put(i)
        self._wake.set()

    def on_result(self, result: InspectionResult) -> None:
        """A result listener (inspection thread): counts only, no I/O."""
        ng = result.verdict is Verdict.NG
        with self._lock:
            if result.run_id != self._results_run:  # a new run: NG counts start again
                self._results_run = result.run_id
                self._ng_in_a_row = 0
                self._recent_ng.clear()
            self._ng_in_a_row = self._ng_in_a_row + 1 if ng else 0
            self._recent_ng.append(ng)
            if result.error.startswith("Model failed"):
                self._model_errors += 1
                self._model_error = result.error

    # -- the monitor's thread ----------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="lepton-alarms", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self._write_acks()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:  # the monitor must never die: log and try again
                log.exception("alarm check failed")
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def check(self) -> None:
        """Evaluate every condition once and write what changed (the monitor's thread, or a test)."""
        self._write_acks()
        c = self.config
        status = self._status()
        if status is not None and status.run_id != self._run_id:  # a new run: its frame counts start at 0
            self._run_id, self._lost_frames = status.run_id, 0
        faulted = status is not None and status.state is RunnerState.FAULTED
        self._condition("camera", faulted and status.fault == "camera", status.message if status else "")
        self._condition("record", faulted and status.fault == "record", status.message if status else "")
        with self._lock:
            in_a_row, recent = self._ng_in_a_row, list(self._recent_ng)
            model_errors, model_error, self._model_errors = self._model_errors, self._model_error, 0
        if faulted and status.fault == "inspection":
            self._condition("model", True, status.message)
        else:
            self._condition("model", model_errors > 0, f"The model failed on {model_errors} part(s), the last with: "
                                                       f"{model_error.removeprefix('Model failed: ')}. They were recorded as REVIEW.")
        self._condition("consecutive_ng", c.consecutive_ng > 0 and in_a_row >= c.consecutive_ng,
                        f"{in_a_row} NG parts in a row (limit {c.consecutive_ng}): check the line.")
        rate = sum(recent) / len(recent) if recent else 0.0
        self._condition("ng_rate", c.ng_rate_limit > 0 and len(recent) >= c.ng_rate_window and rate > c.ng_rate_limit,
                        f"NG rate {100 * rate:.0f} % over the last {len(recent)} parts, above the limit of {100 * c.ng_rate_limit:.0f} %.")
        free_mb = _free_mb(self.disk_path)
        self._condition("disk", free_mb is not None and free_mb < c.min_free_disk_mb,
                        f"Disk space low: {free_mb} MB free where the record is kept ({self.disk_path}), limit {c.min_free_disk_mb} MB.")
        if status is not None and c.dropped_frames:
            lost = status.dropped + status.failed_grabs
            new = lost - self._lost_frames
            self._lost_frames = lost
            self._condition("dropped", new > 0, f"{new} frames dropped or failed since the last check ({lost} in this run): "
                                                "they were not inspected.")

    def _condition(self, kind: str, true: bool, message: str) -> None:
        if not true:
            self._latched.discard(kind)
            return
        if kind in self._latched:
            return
        self._latched.add(kind)
        log.warning("alarm (%s): %s", kind, message)
        now = utcnow()
        with self.store.session() as s:
            row = Event(ts=now, run_id=self._run_id, level="alarm", kind=kind, message=message)
            s.add(row)
            s.commit()
            alarm = Alarm(row.id, kind, message, now)
        with self._lock:
            self._active[alarm.event_id] = alarm

    def _write_acks(self) -> None:
        ids = []
        while True:
            try:
                ids.append(self._acks.get_nowait())
            except queue.Empty:
                break
        if ids:
            with self.store.session() as s:
                s.execute(update(Event).where(Event.id.in_(ids), Event.acknowledged_at.is_(None)).values(acknowledged_at=utcnow()))
                s.commit()

    def _load_unacknowledged(self) -> None:
        with self.store.session() as s:
            rows = s.scalars(select(Event).where(Event.level == "alarm", Event.kind.in_(KINDS), Event.acknowledged_at.is_(None))).all()
        with self._lock:
            self._active = {r.id: Alarm(r.id, r.kind, r.message, r.ts) for r in rows}


def _free_mb(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free // 2**20
    except OSError:
        return None
