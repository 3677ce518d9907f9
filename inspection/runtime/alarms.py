"""Alarms: conditions an operator must see and acknowledge, each recorded in the event log.

An `AlarmMonitor` watches a line: every result (on the inspection thread, in constant time) and,
on its own thread every `interval_s`, the runner's status and the free disk space. A condition
that becomes true raises an alarm once (an `events` row, level "alarm"); it is raised again only
after the condition has cleared (bursty ones - dropped frames, model failures - after it has
stayed clear for `HOLD_OFF_S`). Conditions seen on the inspection thread (NG in a row, the NG
rate) are kept until the next check, so a streak between two checks is not missed. A lost camera
is read from the runner's loss and reconnection counts, not only its state, so a camera that is
lost and back between two checks still raises its alarm; each check that finds a new loss raises
one (its message counts the run's losses), and the return is an info event ("Camera ...
reconnected after 3.2 s; inspection resumed.") in the event log. An alarm stays active until
acknowledged (`acknowledged_at` in its row), also across a restart: unacknowledged alarms are
read back from the record at start. Database writes happen on the monitor's thread only, never on
the inspection or GUI thread; an alarm that cannot be written (a full disk) is still shown, with a
negative id and a note. A reject gate (`watch_reject`) raises the "reject" alarm for parts that
reached the gate before their verdict and for failed writes to its output. Every alarm raised or
acknowledged is also published (`on_change`: the line's event hub).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import itertools
import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from inspection.priority import background_thread
from inspection.record import event_log
from inspection.record.store import Store, utcnow
from inspection.result import InspectionResult, Verdict
from inspection.runtime.events import AlarmChanged
from inspection.runtime.reject_gate import RejectStats
from inspection.runtime.status import RunnerState, RunnerStatus
from inspection.settings.config import AlarmConfig

log = logging.getLogger(__name__)

KINDS = ("camera", "model", "record", "consecutive_ng", "ng_rate", "disk", "dropped", "images", "reject")
HOLD_OFF_S = 10.0  # a bursty condition must stay clear this long before it can raise a new alarm
BURSTY = ("dropped", "model", "images", "reject")


@dataclasses.dataclass(frozen=True)
class Alarm:
    event_id: int  # its row in `events`; negative when it could not be recorded
    kind: str
    message: str
    raised_at: dt.datetime  # naive UTC, as stored


def _no_status() -> RunnerStatus | None:
    return None


class AlarmMonitor:
    def __init__(
        self,
        store: Store,
        config: AlarmConfig,
        status: Callable[[], RunnerStatus | None],
        *,
        disk_path: Path | None = None,
        interval_s: float = 0.5,
        on_change: Callable[[AlarmChanged], None] | None = None,
    ) -> None:
        self.store = store
        self._on_change = on_change  # told of every alarm raised or acknowledged
        self.config = config
        self._status = status
        if disk_path is None:
            if store.path is None:
                raise ValueError("an alarm monitor of a record on a server needs the disk to watch (disk_path)")
            disk_path = store.path.parent
        self.disk_path = disk_path
        self.interval_s = interval_s
        self._lock = threading.Lock()  # the counts and the active alarms (any thread)
        self._check_lock = threading.Lock()  # one check at a time (the monitor's thread, or a test's call)
        self._active: dict[int, Alarm] = {}
        self._latched: set[str] = set()
        self._clear_since: dict[str, float] = {}
        self._unrecorded_ids = itertools.count(-1, -1)
        # Counts of the current run's results (under _lock)
        self._ng_in_a_row = 0
        self._max_in_a_row = 0  # the longest NG streak since the last check
        self._recent_ng: collections.deque[bool] = collections.deque(maxlen=max(1, config.ng_rate_window))
        self._recent_ng_count = 0  # NG parts in _recent_ng (kept, not summed, per part)
        self._max_rate = 0.0  # the highest NG rate over a full window since the last check
        self._model_errors = 0  # parts the model failed on since the last check
        self._model_error = ""  # the last such failure
        self._results_run: int | None = None  # the run of the last result
        # The monitor thread's own
        self._lost_frames = 0  # dropped + failed at the last check (per run)
        self._images_missing = 0  # images not saved at the last check (per run)
        self._losses_alarmed = 0  # camera losses of the run that raised their alarm
        self._backs_logged = 0  # camera losses of the run whose return is in the event log
        self._run_id: int | None = None  # the run the status belongs to
        self._reject: Callable[[], RejectStats | None] | None = None  # the reject gate's counts (watch_reject)
        self._reject_seen: tuple[int | None, int, int] = (None, 0, 0)  # (run, misses, errors) at the last check
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._load_unacknowledged()

    # -- any thread ------------------------------------------------------------------------
    def active(self) -> tuple[Alarm, ...]:
        """Unacknowledged alarms, oldest first."""
        with self._lock:
            return tuple(sorted(self._active.values(), key=lambda a: (a.raised_at, abs(a.event_id))))

    def acknowledge(self, event_ids: Iterable[int] | None = None) -> None:
        """Acknowledge these alarms (the ones an operator saw), or all with None; they leave
        `active()` at once, the record follows on the monitor's thread."""
        with self._lock:
            ids = list(self._active) if event_ids is None else [i for i in event_ids if i in self._active]
            gone = [self._active.pop(i) for i in ids]
        for i in ids:
            if i > 0:
                self._acks.put(i)
        self._wake.set()
        for alarm in gone:
            self._publish(AlarmChanged(alarm.kind, alarm.message, active=False))

    def _publish(self, event: AlarmChanged) -> None:
        if self._on_change is not None:
            self._on_change(event)

    def on_result(self, result: InspectionResult) -> None:
        """A result listener (inspection thread): counts only, no I/O. Counts parts: a station of
        several cameras counts each part once, by its verdict (the worst of its views)."""
        if result.error:  # the runner sets it only when the model failed on the view
            with self._lock:
                self._model_errors += 1
                self._model_error = result.error
        if result.view != 0:
            return
        ng = (result.part_verdict or result.verdict) is Verdict.NG
        with self._lock:
            if result.run_id != self._results_run:  # a new run: NG counts start again
                self._results_run = result.run_id
                self._ng_in_a_row = 0
                self._recent_ng.clear()
                self._recent_ng_count = 0
            self._ng_in_a_row = self._ng_in_a_row + 1 if ng else 0
            self._max_in_a_row = max(self._max_in_a_row, self._ng_in_a_row)
            if len(self._recent_ng) == self._recent_ng.maxlen:
                self._recent_ng_count -= self._recent_ng[0]  # the part that leaves the window
            self._recent_ng.append(ng)
            self._recent_ng_count += ng
            if len(self._recent_ng) == self._recent_ng.maxlen:
                self._max_rate = max(self._max_rate, self._recent_ng_count / len(self._recent_ng))

    def watch_reject(self, stats: Callable[[], RejectStats | None]) -> None:
        """Raise the "reject" alarm for new misses and output failures of a RejectGate (its `stats`)."""
        self._reject = stats

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
        self._status = _no_status  # no reference back to the line (the line holds this monitor)
        self._reject = None

    def _loop(self) -> None:
        background_thread()
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:  # the monitor must never die: log and try again
                log.exception("alarm check failed")
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def check(self) -> None:
        """Evaluate every condition once and write what changed (the monitor's thread, or a test)."""
        with self._check_lock:
            self._check()

    def _check(self) -> None:
        try:
            self._write_acks()
        except Exception:  # the record cannot be written now: the acknowledgements wait
            log.exception("writing alarm acknowledgements failed")
        status = self._status()
        if status is not None and status.run_id != self._run_id:  # a new run: its counts start at 0
            self._run_id, self._lost_frames, self._images_missing = status.run_id, 0, 0
            self._losses_alarmed = self._backs_logged = 0
        self._check_faults(status)
        self._check_parts()
        self._check_disk()
        if status is not None:
            self._check_frames(status)
        self._check_reject()
        if status is not None:
            self._check_images(status)

    def _check_faults(self, status: RunnerStatus | None) -> None:
        """The run's faults (a lost camera, the record, the inspection thread) and model failures."""
        faulted = status is not None and status.state is RunnerState.FAULTED
        fault = status.fault if status is not None and faulted else ""
        message = status.message if status is not None else ""
        with self._lock:
            model_errors, model_error, self._model_errors = self._model_errors, self._model_error, 0
        self._check_camera(status, fault == "camera", message)
        self._condition("record", fault == "record", message)
        if fault == "inspection":
            self._condition("model", True, message)
        else:
            self._condition(
                "model",
                model_errors > 0,
                f"The model failed on {model_errors} part(s), the last with: "
                f"{model_error.removeprefix('Model failed: ')}. They were recorded as REVIEW.",
            )

    def _check_parts(self) -> None:
        """NG in a row, and the NG rate over the last parts (the worst since the last check)."""
        c = self.config
        with self._lock:
            streak, self._max_in_a_row = self._max_in_a_row, self._ng_in_a_row
            rate, self._max_rate = self._max_rate, 0.0
            window = len(self._recent_ng)
        self._condition(
            "consecutive_ng",
            c.consecutive_ng > 0 and streak >= c.consecutive_ng,
            f"{streak} NG parts in a row (limit {c.consecutive_ng}): check the line.",
        )
        self._condition(
            "ng_rate",
            c.ng_rate_limit > 0 and rate > c.ng_rate_limit,
            f"NG rate {100 * rate:.0f} % over the last {window} parts, "
            f"above the limit of {100 * c.ng_rate_limit:.0f} %.",
        )

    def _check_disk(self) -> None:
        c = self.config
        free_mb = _free_mb(self.disk_path)
        self._condition(
            "disk",
            free_mb is not None and free_mb < c.min_free_disk_mb,
            f"Disk space low: {free_mb} MB free where the record is kept ({self.disk_path}), "
            f"limit {c.min_free_disk_mb} MB.",
        )

    def _check_frames(self, status: RunnerStatus) -> None:
        """Frames dropped or failed since the last check."""
        if self.config.dropped_frames:
            lost = status.dropped + status.failed_grabs
            new = lost - self._lost_frames
            self._lost_frames = lost
            self._condition(
                "dropped",
                new > 0,
                f"{new} frames dropped or failed since the last check ({lost} in this run): they were not inspected.",
            )

    def _check_images(self, status: RunnerStatus) -> None:
        """Part images not saved since the last check."""
        new, self._images_missing = status.images_missing - self._images_missing, status.images_missing
        self._condition(
            "images",
            new > 0,
            f"{new} part images could not be saved since the last check ({status.images_missing} "
            f"in this run; {status.image_error}): their parts are recorded, the images marked missing.",
        )

    def _check_reject(self) -> None:
        """A part that reached the reject gate before its verdict, or a failed write to the reject output."""
        if self._reject is None:
            return
        r = self._reject()
        if r is None:  # (no gate: the reject output is off)
            return
        run, misses, errors = self._reject_seen
        if r.run_id != run:  # a new run: its counts start at 0
            misses = errors = 0
        self._reject_seen = (r.run_id, r.misses, r.output_errors)
        if r.misses > misses:
            self._condition("reject", True, r.last_miss)
        else:
            self._condition(
                "reject",
                r.output_errors > errors,
                f"The reject output failed {r.output_errors - errors} time(s) ({r.last_error.rstrip('.')}): "
                "rejected parts may pass the gate.",
            )

    def _check_camera(self, status: RunnerStatus | None, faulted: bool, message: str) -> None:
        """The camera alarm: raised by a fault, or by a loss since the last check even if the
        camera is back already (a new alarm for each check that finds a new loss); a return after
        an alarm is logged."""
        losses = status.camera_losses if status is not None else 0
        backs = status.reconnects if status is not None else 0
        new_loss = losses > self._losses_alarmed
        if new_loss:
            self._log_return(status, backs)  # a return from the last alarmed loss before this one
            self._latched.discard("camera")  # a new loss is a new alarm
            self._losses_alarmed = losses
            if not faulted and status is not None:
                message = status.camera_lost  # lost and back between two checks
        self._condition("camera", faulted or new_loss, message)
        self._log_return(status, backs)

    def _log_return(self, status: RunnerStatus | None, backs: int) -> None:
        """An info event when the camera came back from the losses alarmed so far."""
        if status is None or not self._backs_logged < self._losses_alarmed <= backs:
            return
        self._backs_logged = self._losses_alarmed
        self._record("info", "camera", status.camera_back)  # "Camera ... reconnected after 3.2 s; inspection resumed."

    def _record(self, level: str, kind: str, message: str) -> None:
        try:
            event_log.add_event(self.store, level=level, kind=kind, message=message, run_id=self._run_id, ts=utcnow())
        except Exception as exc:  # the record cannot be written now: the log says so
            log.error("event (%s) could not be recorded: %s", kind, exc)

    def _condition(self, kind: str, true: bool, message: str) -> None:
        now = time.monotonic()
        if not true:
            if kind in self._latched:
                since = self._clear_since.setdefault(kind, now)
                if kind not in BURSTY or now - since >= HOLD_OFF_S:
                    self._latched.discard(kind)
                    self._clear_since.pop(kind, None)
            return
        self._clear_since.pop(kind, None)
        if kind in self._latched:
            return
        log.warning("alarm (%s): %s", kind, message)
        raised = utcnow()
        try:
            event_id = event_log.add_event(
                self.store, level="alarm", kind=kind, message=message, run_id=self._run_id, ts=raised
            )
            alarm = Alarm(event_id, kind, message, raised)
        except Exception as exc:  # a full disk, a locked database: the operator must still see it
            log.error("alarm (%s) could not be recorded: %s", kind, exc)
            alarm = Alarm(
                next(self._unrecorded_ids), kind, f"{message} (Not recorded in the event log: {exc}.)", raised
            )
        self._latched.add(kind)
        with self._lock:
            self._active[alarm.event_id] = alarm
        self._publish(AlarmChanged(kind, alarm.message, active=True))

    def _write_acks(self) -> None:
        ids = []
        while True:
            try:
                ids.append(self._acks.get_nowait())
            except queue.Empty:
                break
        if not ids:
            return
        try:
            event_log.acknowledge(self.store, ids)
        except Exception:
            for i in ids:  # try again at the next check
                self._acks.put(i)
            raise

    def _load_unacknowledged(self) -> None:
        rows = event_log.unacknowledged_alarms(self.store, KINDS)
        with self._lock:
            self._active = {r.event_id: Alarm(r.event_id, r.kind, r.message, r.raised_at) for r in rows}
        # A condition still true at start (a full disk) does not raise its unacknowledged alarm again.
        self._latched = {r.kind for r in rows}


def _free_mb(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free // 2**20
    except OSError:
        return None
