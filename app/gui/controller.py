"""Drives a `Line` from the GUI without ever blocking the GUI thread.

Slow work (loading the model, opening the camera and the store, starting and stopping a run,
switching recipe or camera, loading a part's image) runs on one worker thread, in the order asked
(a Start pressed the moment the line is ready waits for the opening job's last instructions
instead of being dropped); its outcome comes back as a Qt signal, delivered on the GUI thread.
Results are not pushed to the GUI: the runner's listener only keeps the latest one, and the
window pulls it on a timer, so a slow screen drops frames instead of queueing them.
A second thread reads the station's statistics from the record once a second (shift counters,
trend, rejects with thumbnails, events, alarms) and hands the window one frozen snapshot.
State changes are pushed: the open line's events (`Line.events`) arrive on the publisher's thread
and are handed on at once - a run's state and an alarm as Qt signals (queued to the GUI thread), a
changeover (by a PLC's RecipeIndex) as a job for the worker, which tells the window what runs now.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal, SignalInstance

import resources
from inspection.access.users import Permission, User, require
from inspection.errors import USER_ERRORS
from inspection.line import Line, record_switch
from inspection.record.forwarding import ForwardStatus, forwarder_of
from inspection.record.store import utcnow
from inspection.reports import stats
from inspection.result import InspectionResult
from inspection.runtime.alarms import Alarm
from inspection.runtime.events import AlarmChanged, LineEvent, RunStateChanged, SetupChanged
from inspection.runtime.overlay import recorded_part
from inspection.runtime.reject_gate import RejectStats
from inspection.runtime.status import RunnerState, RunnerStatus
from inspection.settings.config import default_db
from inspection.settings.recipe_folder import recipes_folder

log = logging.getLogger(__name__)

STATS_INTERVAL_S = 1.0
TREND = (dt.timedelta(minutes=5), 12)  # the NG-rate strip: the last hour in 5-minute bars
FILMSTRIP = 8
THUMB_HEIGHT = 96

Opener = Callable[[str, "Path | None"], Line]  # (camera spec, recipe file or None) -> an open line


@dataclasses.dataclass(frozen=True)
class LineChoices:
    """What the open line is, and what the operator may switch to."""

    camera_spec: str
    recipe_name: str
    recipe_path: Path | None  # None: the default recipe
    recipes: tuple[tuple[str, Path | None], ...]  # (name, file); the default recipe first
    cameras: tuple[str, ...]  # camera specs: the current one, simulated, emulated, each Basler camera found
    ng_at: float  # the NG threshold in force (the heatmap's red)
    model_classes: tuple[str, ...] = ()  # what the model names its defects (the review's class filter)


@dataclasses.dataclass(frozen=True)
class StationSnapshot:
    shift_name: str
    shift_start: dt.datetime  # in the line's time zone
    shift_end: dt.datetime
    shift: stats.Counters
    since_start: stats.Counters
    trend: tuple[stats.TrendPoint, ...]
    rejects: tuple[tuple[stats.PartRow, np.ndarray | None], ...]  # with an RGB thumbnail (None if no image)
    events: tuple[stats.EventRow, ...]
    alarms: tuple[Alarm, ...]
    taken_at: float  # time.perf_counter() when reading began


@dataclasses.dataclass(frozen=True)
class PartView:
    """A recorded part loaded for display: its image with the defect outline."""

    row: stats.PartRow
    image: np.ndarray | None  # RGB; None when the file is missing
    message: str = ""


class LineController(QObject):
    ready = Signal(object)  # LineChoices: the line is open (model loaded, camera and database open)
    failed = Signal(str)  # one sentence for the operator
    started = Signal(int)  # run id
    stopped = Signal(str)  # how the run ended
    busy = Signal(str)  # what is being done; "" when idle
    stats = Signal(object)  # StationSnapshot, about once a second
    part_loaded = Signal(object)  # PartView
    closed = Signal()  # the line is stopped and closed (after close_line)
    report_written = Signal(str)  # the PDF's path (after export_report)
    run_state = Signal(object)  # RunStateChanged: the open line's run changed state (pushed by the runner)
    alarm_changed = Signal(object)  # AlarmChanged: an alarm was raised or acknowledged

    def __init__(
        self, opener: Opener, camera_spec: str, recipe: Path | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._opener = opener
        self.camera_spec = camera_spec
        self.recipe = recipe
        self.line: Line | None = None
        self.model_pinned = False  # the opener loads one fixed model (`--model`): promotions do not apply
        self.db = default_db()  # the database the opener opens (set by whoever builds the opener)
        self.choices: LineChoices | None = None
        self.started_at = utcnow()  # "since start" counters count from here
        self._lock = threading.Lock()
        self._latest: tuple[InspectionResult, float] | None = None
        self._status: RunnerStatus | None = None
        self._jobs: queue.SimpleQueue[tuple[str, Callable[[], None]] | None] = queue.SimpleQueue()  # None: the end
        self._unsubscribe: Callable[[], None] | None = None  # from the open line's events
        self._closing = threading.Event()
        self._stats_wake = threading.Event()
        self._thumbs: OrderedDict[str, np.ndarray | None] = OrderedDict()
        self._worker = threading.Thread(target=self._work, name="lepton-gui-job", daemon=True)
        self._worker.start()
        self._stats_thread = threading.Thread(target=self._poll_stats, name="lepton-gui-stats", daemon=True)
        self._stats_thread.start()
        self._fault_handled = False

    # -- called from worker threads ----------------------------------------------------
    def _on_result(self, result: InspectionResult) -> None:
        with self._lock:
            self._latest = (result, time.perf_counter())

    def latest(self) -> InspectionResult | None:
        with self._lock:
            return self._latest[0] if self._latest else None

    def latest_entry(self) -> tuple[InspectionResult, float] | None:
        """The latest result and when it was published (time.perf_counter)."""
        with self._lock:
            return self._latest

    def status(self) -> RunnerStatus | None:
        """The current run's status (cheap; called on the GUI timer), or the last run's."""
        line = self.line
        if line is not None:
            self._status = line.status()  # (kept: the window still shows the last run's status while a line reopens)
        return self._status

    def line_signals(self) -> tuple[str, int, int, str, dict | None, RejectStats | None, ForwardStatus | None] | None:
        """(recipe, version, PLC index, lot, PLC signals, reject gate stats, plant database forwarding;
        None where there is none) of the open line: values in memory, cheap enough for the GUI timer.
        None when no line is open."""
        line = self.line
        if line is None:
            return None
        plc = line.plc
        forwarder = forwarder_of(line.store)
        return (
            line.recipe.name,
            line.recipe_version,
            line.recipe.index,
            line.lot_id,
            plc.signals() if plc is not None else None,
            line.reject_stats(),
            forwarder.status() if forwarder is not None else None,
        )

    @property
    def running(self) -> bool:
        s = self.status()
        return s is not None and s.active and self.line is not None and self.line.runner is not None

    def submit(self, what: str, job: Callable[[], None]) -> None:
        """Run `job` on the line's worker, after the jobs asked for before (for the session's
        password checks and user changes: the store is the open line's)."""
        self._spawn(what, job)

    def _spawn(self, what: str, job: Callable[[], None]) -> None:
        """Queue a job for the worker thread (jobs run one at a time, in order; any thread may ask)."""
        self._jobs.put((what, job))

    def _work(self) -> None:
        while (item := self._jobs.get()) is not None:
            what, job = item
            self.busy.emit(what)
            try:
                run_job(what, job, self.failed)
            finally:
                self.busy.emit("")

    def _open_line(self) -> None:
        """(worker) Open the line on the current camera spec and recipe, and say what it offers."""
        line = self._opener(self.camera_spec, self.recipe)
        line.add_result_listener(self._on_result)
        self._unsubscribe = line.events.subscribe(lambda event: self._on_line_event(line, event))
        self.line = line
        self._announce(line)

    def _close_open_line(self) -> None:
        """(worker) Stop listening to the open line, then close it (its run stopped, every part committed)."""
        line, self.line = self.line, None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if line is not None:
            line.close()

    def _on_line_event(self, line: Line, event: LineEvent) -> None:
        """(the publisher's thread: a runner's, the alarm monitor's, a changeover's) Hand the event on
        at once, never blocking and never touching a widget: signals are queued to the GUI thread."""
        if isinstance(event, RunStateChanged):
            self.run_state.emit(event)
        elif isinstance(event, AlarmChanged):
            self.alarm_changed.emit(event)
        elif isinstance(event, SetupChanged) and threading.current_thread() is not self._worker:
            # (a changeover on the worker is the window's own: its job says what runs when it is done)
            self._spawn("Following the PLC's recipe change", lambda: self._follow(line))

    def _follow(self, line: Line) -> None:
        """(worker) A changeover the window did not ask for (a PLC's RecipeIndex): the window follows
        (its boxes, title, settings). The changeover is published once it is done (its next run started)."""
        setup, choices = line.setup, self.choices
        if line is not self.line or (
            choices is not None and (setup.recipe_path, setup.recipe.name) == (choices.recipe_path, choices.recipe_name)
        ):
            return  # another line since, or the window's own changeover (announced already)
        self.recipe = setup.recipe_path
        self._announce(line)

    def _announce(self, line: Line) -> None:
        """(worker) Say what the open line offers and runs now."""
        setup = line.setup  # (one read: a changeover replaces it whole)
        self.choices = LineChoices(
            camera_spec=self.camera_spec,
            recipe_name=setup.recipe.name,
            recipe_path=self.recipe,
            recipes=_recipes(setup.recipe.name, self.recipe, recipes_folder(line.base_config)),
            cameras=_cameras(self.camera_spec),
            ng_at=setup.thresholds.ng_at,
            model_classes=tuple(setup.inspector.info.classes),
        )
        self._stats_wake.set()
        self.ready.emit(self.choices)

    # -- called from the GUI thread ------------------------------------------------------
    def open(self) -> None:
        self._spawn("Loading model, opening camera and database", self._open_line)

    def reopen(self, camera_spec: str, recipe: Path | None, user: User | None = None) -> None:
        """Switch camera or recipe: close the line (not while it runs) and open it again; while it
        runs, another recipe on the same camera is a changeover between parts (`Line.change_recipe`).
        A switch someone asked for (`user`) needs their permission to run the line and is in the
        audit trail; a reopen after a promotion (no user) was checked and recorded as the promotion."""
        if self.running and camera_spec == self.camera_spec and user is not None:
            self._change_recipe(recipe, user)
            return
        if self.running:
            self.failed.emit(
                "Stop the line before changing the camera."
                if camera_spec != self.camera_spec
                else "Stop the line to load the new model; the next start uses it."
            )
            return

        def job() -> None:
            if user is not None and self.line is not None:
                record_switch(
                    self.line.store,
                    user,
                    camera=camera_spec,
                    recipe=recipe,
                    from_camera=self.camera_spec,
                    from_recipe=self.recipe,
                )
            self._close_open_line()
            self.camera_spec, self.recipe = camera_spec, recipe
            self._open_line()

        self._spawn(
            "Switching to " + (f"recipe {recipe.stem}" if recipe else "the default recipe") + f" on {camera_spec}", job
        )

    def _change_recipe(self, recipe: Path | None, user: User) -> None:
        line = self.line
        if line is None:
            return

        def job() -> None:
            line.change_recipe(recipe, by=user)
            self.recipe = recipe
            self._announce(line)

        self._spawn("Changeover to " + (f"recipe {recipe.stem}" if recipe else "the default recipe"), job)

    def start(self, user: User) -> None:
        line = self.line
        if line is None:
            return

        def job() -> None:
            require(line.store, user, Permission.RUN_LINE)
            self._fault_handled = False
            runner = line.start()
            self.started.emit(runner.run_id)

        self._spawn("Starting the line", job)

    def stop(self) -> None:
        """Stop the run: at once between parts (never waiting for a changeover or other job), the
        rest - commits, the record of the run's end - in the background."""
        line = self.line
        if line is None:
            return
        line.request_stop()  # (also between the two runs of a changeover: it then starts none)

        def job() -> None:
            status = line.stop()
            if status is not None:
                self._stats_wake.set()
                self.stopped.emit(status.message)

        self._spawn("Stopping the line", job)

    def pause(self) -> None:
        """Pause or resume the running line (takes effect between parts; never blocks)."""
        runner = self.line.runner if self.line is not None else None
        if runner is None:
            return
        if runner.state is RunnerState.PAUSED:
            runner.resume()
        else:
            runner.pause()

    def acknowledge(self, event_ids: tuple[int, ...]) -> None:
        """Acknowledge the alarms an operator saw (in memory at once; the record follows on the alarm thread)."""
        if self.line is not None:
            self.line.alarms.acknowledge(event_ids)
            self._stats_wake.set()

    def active_alarms(self) -> tuple[Alarm, ...]:
        line = self.line
        return line.alarms.active() if line is not None else ()

    def load_part(self, row: stats.PartRow) -> None:
        """Read a recorded part's image and mask in the background; `part_loaded` brings it."""

        def job() -> None:
            image = recorded_part(row.image, row.mask, row.verdict)
            if image is None:
                self.part_loaded.emit(
                    PartView(row, None, f"The image of part {row.part_id} was not kept or is missing.")
                )
                return
            self.part_loaded.emit(PartView(row, image))

        self._spawn("Loading part image", job)

    def report_stem(self) -> str:
        """A file name (without suffix) for the current shift's report."""
        from inspection.reports.shifts import report_stem

        line = self.line
        if line is None:
            return "shift-report"
        name, start, _ = line.config.shifts.shift_at(dt.datetime.now(dt.UTC))
        return report_stem(line.config, name, start.replace(tzinfo=None))

    def export_report(self, path: Path, user: User) -> None:
        """The current shift's report (so far) as PDF at `path`, with its CSV and JSON beside it. On a
        thread of its own, reading the database read-only: Start and Stop never wait behind a report,
        and a recipe switch meanwhile does not pull the database from under it."""
        line = self.line
        if line is None:
            return

        def job() -> None:
            from inspection.record.opening import open_record
            from inspection.reports.figures import Window
            from inspection.reports.shifts import write_shift_report

            name, start, end = line.config.shifts.shift_at(dt.datetime.now(dt.UTC))
            window = Window(start.replace(tzinfo=None), end.replace(tzinfo=None), f"Shift {name}")
            with open_record(line.store.path, read_only=True) as record:
                require(record, user, Permission.EXPORT_REPORT)
                written = write_shift_report(record, line.config, window, path.parent, stem=path.stem)
            self.report_written.emit(str(written))

        def report() -> None:
            self.busy.emit("Writing the shift report")
            try:
                run_job("The shift report", job, self.failed, prefix="The shift report could not be written: ")
            finally:
                self.busy.emit("")

        threading.Thread(target=report, name="lepton-gui-report", daemon=True).start()

    def refresh_stats(self) -> None:
        self._stats_wake.set()

    def check_fault(self) -> str | None:
        """When a run's state changes (GUI thread): a faulted run's message, once, and the run is wound up."""
        s = self.status()
        if s is not None and s.state is RunnerState.FAULTED and not s.reconnecting and not self._fault_handled:
            self.stop()
            self._fault_handled = True  # the run is being wound up (queued behind any job in progress)
            return s.message
        return None

    def close_line(self) -> None:
        """On window close, in the background after any job asked for before: stop the run (every
        part committed), close camera, alarms and database; then `closed`, and the worker ends."""
        self._closing.set()
        self._stats_wake.set()

        def job() -> None:
            self._stats_thread.join(10)
            self._close_open_line()
            self._jobs.put(None)  # the last job
            self.closed.emit()

        self._spawn("Stopping the line and closing the record", job)

    # -- the statistics thread ------------------------------------------------------------
    def _poll_stats(self) -> None:
        while not self._closing.is_set():
            line = self.line
            if line is not None:
                try:
                    self.stats.emit(self.snapshot(line))
                except Exception:  # a busy or closing database: try again next time
                    log.exception("reading the station statistics failed")
            self._stats_wake.wait(STATS_INTERVAL_S)
            self._stats_wake.clear()

    def snapshot(self, line: Line) -> StationSnapshot:
        """Everything the window shows that comes from the record (runs on the statistics thread)."""
        taken_at = time.perf_counter()
        name, start, end = line.config.shifts.shift_at(dt.datetime.now(dt.UTC))
        naive_start, naive_end = start.replace(tzinfo=None), end.replace(tzinfo=None)
        bucket, n = TREND
        now = utcnow()
        shift = stats.counters(line.store, naive_start, naive_end, now=now)
        since_start = stats.counters(line.store, self.started_at, now=now)
        live = line.status()
        if live is not None and line.runner is not None:  # the running run's drops are in its status until it ends
            lost = live.dropped + live.failed_grabs
            shift = dataclasses.replace(shift, dropped=shift.dropped + lost)
            since_start = dataclasses.replace(since_start, dropped=since_start.dropped + lost)
        rejects = stats.recent_rejects(line.store, FILMSTRIP)
        return StationSnapshot(
            shift_name=name,
            shift_start=start.astimezone(line.config.shifts.tz),
            shift_end=end.astimezone(line.config.shifts.tz),
            shift=shift,
            since_start=since_start,
            trend=tuple(stats.ng_trend(line.store, stats.trend_start(now, bucket, n), bucket, n)),
            rejects=tuple((r, self._thumbnail(r)) for r in rejects),
            events=tuple(stats.recent_events(line.store, 30)),
            alarms=line.alarms.active(),
            taken_at=taken_at,
        )

    def _thumbnail(self, row: stats.PartRow) -> np.ndarray | None:
        if row.part_id in self._thumbs:
            return self._thumbs[row.part_id]
        image = recorded_part(row.image, row.mask, row.verdict, shown_height=THUMB_HEIGHT)
        thumb = None
        if image is not None:
            w = max(1, round(image.shape[1] * THUMB_HEIGHT / image.shape[0]))
            thumb = cv2.resize(image, (w, THUMB_HEIGHT), interpolation=cv2.INTER_AREA)
        if thumb is not None:  # (a part's image may still be on its way to the disk: look again next time)
            self._thumbs[row.part_id] = thumb
        while len(self._thumbs) > 4 * FILMSTRIP:
            self._thumbs.popitem(last=False)
        return thumb


def run_job(what: str, job: Callable[[], None], failed: SignalInstance, prefix: str = "") -> None:
    """Run a worker thread's job; whatever goes wrong reaches the window as one sentence on
    `failed` (a user error or a file error as it is, anything else logged with its traceback)."""
    try:
        job()
    except USER_ERRORS as exc:
        failed.emit(f"{prefix}{exc}")
    except OSError as exc:
        where = exc.filename or "no file name"
        failed.emit(f"{prefix or 'A file could not be read or written: '}{exc.strerror or exc} ({where}).")
    except Exception as exc:
        log.exception("%s failed", what)
        failed.emit(f"{what} failed unexpectedly: {exc} (details in the log file).")


def _recipes(current: str, current_path: Path | None, folder: Path) -> tuple[tuple[str, Path | None], ...]:
    from inspection.settings.recipe import load_recipe
    from inspection.settings.recipe_folder import find_recipes

    found = [(name, path) for name, path in find_recipes(folder)]
    if current_path is not None and all(p != current_path for _, p in found):
        found.append((current, current_path))
    return ((load_recipe().name + " (default)", None), *found)


def fallback_cameras(current: str) -> tuple[str, ...]:
    """The cameras offered without asking pylon: the current spec, the simulated and the emulated one."""
    return tuple(dict.fromkeys([current, f"sim:{resources.DEMO_SAMPLES}", f"emu:{resources.DEMO_SAMPLES}"]))


def _cameras(current: str) -> tuple[str, ...]:
    from camera.errors import CameraError
    from camera.spec import list_cameras

    specs = list(fallback_cameras(current))
    try:
        specs += [
            c.spec for c in list_cameras() if c.kind == "basler"
        ]  # real cameras (the emulator plays the samples above)
    except CameraError as exc:
        log.warning("listing Basler cameras: %s", exc)
    return tuple(dict.fromkeys(specs))
