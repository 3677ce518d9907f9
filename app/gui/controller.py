"""Drives a `Line` from the GUI without ever blocking the GUI thread.

Slow work (loading the model, opening the camera and the store, starting and stopping a run)
runs on one worker thread, in the order asked (a Start pressed the moment the line is ready waits
for the opening job's last instructions instead of being dropped); its outcome comes back as a Qt
signal, delivered on the GUI thread.
Results are not pushed to the GUI: the runner's listener only keeps the latest one, and the
window pulls it on a timer, so a slow screen drops frames instead of queueing them.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from inspection.errors import USER_ERRORS
from inspection.line import Line
from inspection.result import InspectionResult
from inspection.runner import RunnerState, RunnerStatus

log = logging.getLogger(__name__)


class LineController(QObject):
    ready = Signal()  # the line is open: model loaded, camera and database open
    failed = Signal(str)  # one sentence for the operator
    started = Signal(int)  # run id
    stopped = Signal(str)  # how the run ended
    busy = Signal(str)  # what is being done; "" when idle

    def __init__(self, opener: Callable[[], Line], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._opener = opener
        self.line: Line | None = None
        self._lock = threading.Lock()
        self._latest: InspectionResult | None = None
        self._status: RunnerStatus | None = None
        self._jobs: queue.SimpleQueue[tuple[str, Callable[[], None]] | None] = queue.SimpleQueue()  # None ends the worker
        self._pending = 0  # jobs asked for and not finished (under _lock)
        self._idle = threading.Event()
        self._idle.set()
        threading.Thread(target=self._work, name="lepton-gui-job", daemon=True).start()
        self._fault_handled = False

    # -- called from worker threads ----------------------------------------------------
    def _on_result(self, result: InspectionResult) -> None:
        with self._lock:
            self._latest = result

    def latest(self) -> InspectionResult | None:
        with self._lock:
            return self._latest

    def status(self) -> RunnerStatus | None:
        """The current run's status (cheap; called on the GUI timer), or the last run's."""
        line = self.line
        runner = line.runner if line is not None else None
        if runner is not None:
            self._status = runner.status()
        return self._status

    @property
    def running(self) -> bool:
        s = self.status()
        return s is not None and s.state in (RunnerState.RUNNING, RunnerState.STOPPING) and self.line is not None and self.line.runner is not None

    def _spawn(self, what: str, job: Callable[[], None]) -> None:
        """Queue a job for the worker thread (jobs run one at a time, in order)."""
        with self._lock:
            self._pending += 1
            self._idle.clear()
        self._jobs.put((what, job))

    def _work(self) -> None:
        while (item := self._jobs.get()) is not None:
            what, job = item
            self.busy.emit(what)
            try:
                job()
            except USER_ERRORS as exc:
                self.failed.emit(str(exc))
            except Exception as exc:
                log.exception("%s failed", what)
                self.failed.emit(f"{what} failed unexpectedly: {exc} (details in the log file).")
            finally:
                with self._lock:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.set()
                self.busy.emit("")

    # -- called from the GUI thread ------------------------------------------------------
    def open(self) -> None:
        def job() -> None:
            line = self._opener()
            line.add_result_listener(self._on_result)
            self.line = line
            self.ready.emit()

        self._spawn("Loading model, opening camera and database", job)

    def start(self) -> None:
        line = self.line
        if line is None:
            return

        def job() -> None:
            self._fault_handled = False
            runner = line.start()
            self._status = runner.status()
            self.started.emit(runner.run_id)

        self._spawn("Starting the line", job)

    def stop(self) -> None:
        """Stop the run in the background (after any job asked for before)."""
        line = self.line
        if line is None or line.runner is None:
            return

        def job() -> None:
            status = line.stop()
            if status is not None:
                self._status = status
                self.stopped.emit(status.message)

        self._spawn("Stopping the line", job)

    def check_fault(self) -> str | None:
        """On the GUI timer: a faulted run's message, once, and the run is wound up."""
        s = self.status()
        if s is not None and s.state is RunnerState.FAULTED and not self._fault_handled:
            self.stop()
            self._fault_handled = True  # the run is being wound up (queued behind any job in progress)
            return s.message
        return None

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """On window close: finish any job, stop the run, close camera and database."""
        if not self._idle.wait(timeout_s):
            log.error("a background job did not finish in %.0f s; closing anyway", timeout_s)
        self._jobs.put(None)
        if self.line is not None:
            self.line.close()
            self.line = None
