"""The line runner: a grab thread per camera -> bounded queues -> the network thread -> the
inspection thread -> the writer's threads (rows, then images).

Each stage runs on its own thread so that they overlap: while the network works on one part, the
next is grabbed and preprocessed and the last is post-processed, decided and handed to the writer
(which encodes images and commits rows on its own threads). In latency mode (runner.mode) the
network takes one view at a time; in throughput mode it takes the views waiting, up to
runner.max_batch at once (a burst of triggers), for more parts per second at some cost in latency.
A station with several cameras inspects them concurrently: a part is the next view of each camera,
each view gets its row, and the part's verdict is the worst of its views.

The runner owns its threads. Its state (`RunnerState`) and a frozen `RunnerStatus` snapshot are
what the CLI and the GUI read; listeners get every `InspectionResult` and every status change on
the worker's thread, and an exception in a listener is logged, never allowed to stop the line.
Stop and pause take effect between parts: frames already grabbed are inspected and recorded; a
paused line stops grabbing (so nothing is dropped while it waits) and resumes where it was.

A lost camera (pulled cable, power cut) faults the runner (`fault="camera"`) without ending the
run: frames already queued are still inspected and recorded, and the grab thread tries every
`RECONNECT_INTERVAL_S` to bring the camera back (close, open: re-enumerate and attach, the
recipe's settings and `.pfs` file, start) until it is back - the runner then goes on where it was,
running or paused - or the line is stopped. Any other camera error ends the run.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from camera.base import Camera, Frame, TriggerMode
from camera.errors import CameraError, CameraRemovedError, GrabFailed, GrabTimeout, TriggerNotReady
from inspection.errors import ConfigError
from inspection.record.writer import ResultWriter
from inspection.result import InspectionResult, Timing, Verdict
from inspection.runtime.verdict import decide, thresholds_in_force
from inspection.settings.config import Config
from inspection.settings.recipe import Recipe
from models.base import Inspector

log = logging.getLogger(__name__)

MAX_FAILED_IN_A_ROW = 25  # failed grabs in a row that fault the run (unreadable images, a failing camera)
RECONNECT_INTERVAL_S = 0.5  # a lost camera is tried again this often


def apply_recipe(camera: Camera, recipe: Recipe) -> None:
    """The recipe's camera settings, then its `.pfs` file (the camera open, not grabbing)."""
    camera.configure(recipe.camera)
    if recipe.settings_file is not None:
        camera.load_settings(recipe.settings_file)


def check_station(cameras: int, recipe: Recipe) -> None:
    """A station of several cameras pairs their views by order, so they must be triggered together."""
    if cameras > 1 and recipe.camera.trigger is TriggerMode.FREE_RUN:
        raise ConfigError(
            f"A station with {cameras} cameras needs a software or hardware trigger, so that their "
            f"views are of the same part; recipe {recipe.name!r} lets the cameras run free."
        )


class TriggerGate:
    """Software triggers on request (a PLC's Trigger): each `request()` lets every camera of the
    station fire its software trigger once, when its grab thread is ready for the next part.
    Requests made while no run is going are dropped when the next run starts (`sync`), and those a
    PLC gave up on when it cancels them (`cancel`)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._requested = 0
        self._taken: dict[int, int] = {}  # per camera: requests taken (fired, or dropped)
        self._floor = 0  # requests up to here are never fired again (a give_back stops here)
        self._skipped: dict[int, int] = {}  # per camera: requests dropped since its grab thread last asked

    def request(self) -> None:
        with self._cond:
            self._requested += 1
            self._cond.notify_all()

    def take(self, camera: int, timeout_s: float) -> bool:
        """True once per request for camera `camera`; False after `timeout_s` without one."""
        with self._cond:
            if self._taken.get(camera, self._requested) >= self._requested:
                self._cond.wait(timeout_s)
            taken = self._taken.get(camera, self._requested)
            if taken < self._requested:
                self._taken[camera] = taken + 1
                return True
            return False

    def give_back(self, camera: int) -> None:
        """A request taken whose trigger was not fired (the camera was not ready): taken again,
        unless it was cancelled meanwhile."""
        with self._cond:
            self._taken[camera] = max(self._floor, self._taken.get(camera, 0) - 1)

    def cancel(self) -> None:
        """Requests not fired yet are dropped (one that timed out must not answer the next part). A
        camera that had not fired for a part the others had is told (`skipped`), so that its next
        view is not paired with their view of the dropped part."""
        with self._cond:
            for k, taken in self._taken.items():
                self._skipped[k] = self._skipped.get(k, 0) + self._requested - taken
            self._taken = {k: self._requested for k in self._taken}
            self._floor = self._requested

    def skipped(self, camera: int) -> int:
        """Requests dropped for `camera` since it last asked: parts it will not image."""
        with self._cond:
            return self._skipped.pop(camera, 0)

    def sync(self, cameras: int) -> None:
        """A new run: requests not yet taken are dropped."""
        with self._cond:
            self._taken = {k: self._requested for k in range(cameras)}
            self._floor = self._requested
            self._skipped = {}


class RunnerState(str, enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    FAULTED = "faulted"


@dataclasses.dataclass(frozen=True)
class RunnerStatus:
    state: RunnerState
    run_id: int | None
    parts: int
    ok: int
    ng: int
    review: int
    dropped: int  # frames grabbed (or skipped by the camera) but never inspected
    failed_grabs: int  # incomplete or corrupt frames, never inspected
    recorded: int  # rows committed to the database
    unwritten: int  # results that could not be written (the run faults when this happens)
    parts_per_s: float
    latency_ms_p50: float
    latency_ms_p99: float
    message: str
    fault: str = ""  # what faulted the run: "camera", "record" or "inspection"; "" when none
    camera_losses: int = 0  # times the camera was lost in this run
    reconnects: int = 0  # times it came back and inspection resumed
    reconnecting: bool = False  # faulted on a lost camera that is being tried again: the run goes on
    camera_lost: str = ""  # the last loss, in a sentence (kept once the camera is back)
    camera_back: str = ""  # the last reconnection, in a sentence
    images_missing: int = 0  # images that were to be kept but could not be (a full disk); their rows are recorded
    image_error: str = ""  # why, the last time
    cameras: int = 1  # views per part
    mode: str = "latency"  # runner.mode: "latency" or "throughput" (micro-batches)
    hand_off_ms_per_part: float = (
        0.0  # inspection-thread time spent handing a part's results to the writer (rows, images)
    )
    commit_ms_per_row: float = 0.0  # the writer thread's commit time per row

    @property
    def active(self) -> bool:
        """The run goes on: running, paused, stopping, or faulted while its camera is being reconnected."""
        return self.state in (RunnerState.RUNNING, RunnerState.PAUSED, RunnerState.STOPPING) or self.reconnecting


ResultListener = Callable[[InspectionResult], None]


class Runner:
    """Runs one or more cameras, one model and one recipe into one store until stopped, faulted for
    good (a lost camera is reconnected instead), or `max_parts` parts are inspected. Construct,
    `start()`, then `wait()` or `stop()`. Result listeners run on the inspection thread: they must be
    quick and must not touch Qt widgets. State is read by polling `status()`.

    The hot path is a pipeline of threads, so that the network is never idle while there is work:
    a grab thread per camera (grab, one copy, preprocess) -> a queue per camera -> the network thread
    (one view, or in throughput mode a micro-batch of the views waiting) -> the inspection thread
    (post-processing, verdict, hand-off to the writer, listeners). With several cameras a part is the
    next view of each camera (they must share a trigger) and its verdict is the worst of its views."""

    def __init__(
        self,
        cameras: Camera | Sequence[Camera],
        inspector: Inspector,
        recipe: Recipe,
        writer: ResultWriter,
        config: Config,
        *,
        run_id: int,
        max_parts: int | None = None,
        result_listeners: Sequence[ResultListener] = (),
        trigger_gate: TriggerGate | None = None,
        recipe_version: int = 0,
    ) -> None:
        self.cameras = [cameras] if isinstance(cameras, Camera) else list(cameras)
        if not self.cameras:
            raise ValueError("a runner needs a camera")
        check_station(len(self.cameras), recipe)
        self.inspector = inspector
        self.recipe = recipe
        self.writer = writer
        self.config = config
        self.run_id = run_id
        self.max_parts = max_parts
        self.recipe_version = recipe_version
        self.lot_id = ""  # rows of parts inspected from now on carry it (set from any thread)
        # A software-triggered station fires its trigger on the gate's requests (a PLC), else as
        # fast as the pipeline takes parts.
        self.trigger_gate = trigger_gate if recipe.camera.trigger is TriggerMode.SOFTWARE else None
        self.thresholds = thresholds_in_force(recipe, inspector.info)
        n = len(self.cameras)
        # Views waiting for the network, a queue per camera; a part is the head of every queue.
        self._views: list[collections.deque[_View]] = [collections.deque() for _ in range(n)]
        # Each camera's next part index: the views of a part share it. It counts every frame a camera
        # was to deliver - grabbed, failed, or skipped by the camera - so a lost view leaves a hole and
        # its part's other views are dropped instead of being paired with the next part's.
        self._index = [0] * n
        # Parts per network call: one in latency mode; in throughput mode as many as max_batch views
        # hold (at least one whole part). A paced camera keeps that many views waiting, never more
        # than its queue holds (so a software-triggered line drops nothing).
        self._parts_per_call = 1 if config.mode == "latency" else max(1, config.max_batch // n)
        self._room = min(self._parts_per_call, config.queue_size)
        self._post: queue.Queue[list[list[_View]] | None] = queue.Queue(maxsize=2)
        self._cond = threading.Condition()
        self._lock = threading.Lock()
        self._state = RunnerState.IDLE
        self._message = ""
        self._fault_kind = ""
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._grabbing = 0  # grab threads still running
        self._grab_done = threading.Event()
        self._inspected_all = threading.Event()
        self._counts = {v: 0 for v in Verdict}
        self._dropped = 0
        self._failed = 0
        self._accepted = [0] * n
        self._losses = 0
        self._reconnects = 0
        self._lost: set[int] = set()  # cameras being reconnected
        self._camera_lost = ""
        self._camera_back = ""
        self._latencies: collections.deque[float] = collections.deque(maxlen=2000)
        self._put_s = 0.0  # inspection-thread time spent handing results to the writer
        self._t_start = 0.0
        self._t_last = 0.0
        self._threads: list[threading.Thread] = []
        self._result_listeners = result_listeners  # (read live: a listener added during the run gets the next results)
        writer.on_error = self._on_write_error

    # -- listeners ---------------------------------------------------------------------
    def _emit(self, result: InspectionResult) -> None:
        for fn in self._result_listeners:
            try:
                fn(result)
            except Exception:
                log.exception("listener %r failed; the line goes on", fn)

    # -- state ---------------------------------------------------------------------------
    @property
    def state(self) -> RunnerState:
        with self._lock:
            return self._state

    def _set_state(self, state: RunnerState, message: str = "") -> None:
        with self._lock:
            self._state = state
            if message:
                self._message = message

    def status(self) -> RunnerStatus:
        with self._lock:
            lat = np.fromiter(self._latencies, dtype=np.float64)
            parts = sum(self._counts.values())
            elapsed = (self._t_last - self._t_start) if parts else 0.0
            images_missing, image_error = self.writer.images_missing
            return RunnerStatus(
                state=self._state,
                run_id=self.run_id,
                parts=parts,
                ok=self._counts[Verdict.OK],
                ng=self._counts[Verdict.NG],
                review=self._counts[Verdict.REVIEW],
                dropped=self._dropped,
                failed_grabs=self._failed,
                recorded=self.writer.recorded,
                unwritten=self.writer.unwritten,
                parts_per_s=parts / elapsed if elapsed > 0 else 0.0,
                latency_ms_p50=float(np.percentile(lat, 50)) if lat.size else 0.0,
                latency_ms_p99=float(np.percentile(lat, 99)) if lat.size else 0.0,
                message=self._message,
                fault=self._fault_kind,
                camera_losses=self._losses,
                reconnects=self._reconnects,
                reconnecting=bool(self._lost),
                camera_lost=self._camera_lost,
                camera_back=self._camera_back,
                images_missing=images_missing,
                image_error=image_error,
                cameras=len(self.cameras),
                mode=self.config.mode,
                hand_off_ms_per_part=self._put_s * 1000 / parts if parts else 0.0,
                commit_ms_per_row=self.writer.commit_ms_per_row,
            )

    # -- control -------------------------------------------------------------------------
    def start(self) -> None:
        """Open and configure the cameras (if needed), start grabbing and the threads.
        Raises CameraError if a camera cannot be opened; the runner then stays idle."""
        if self.state is not RunnerState.IDLE:
            raise RuntimeError("a runner starts once")
        for cam in self.cameras:
            if not cam.is_open:
                cam.open()
            apply_recipe(cam, self.recipe)
        self.writer.start()
        started: list[Camera] = []
        try:
            for cam in self.cameras:
                cam.start()
                started.append(cam)
        except BaseException:
            for cam in started:
                cam.stop()
            self.writer.close()
            raise
        self._t_start = time.perf_counter()
        n = len(self.cameras)
        if self.trigger_gate is not None:
            self.trigger_gate.sync(n)
        self._grabbing = n
        self._threads = [
            threading.Thread(
                target=self._grab_loop, args=(k,), name="lepton-grab" + (f"-{k}" if n > 1 else ""), daemon=True
            )
            for k in range(n)
        ]
        self._threads += [
            threading.Thread(target=self._network_loop, name="lepton-network", daemon=True),
            threading.Thread(target=self._inspect_loop, name="lepton-inspect", daemon=True),
        ]
        self._set_state(RunnerState.RUNNING, "Running.")
        for t in self._threads:
            t.start()

    def pause(self) -> None:
        """Stop grabbing after the current part; frames already grabbed are still inspected. While
        a camera is being reconnected, the line comes back paused."""
        with self._lock:  # (stop and fault change the state under the same lock: no pause after a stop)
            if self._stop.is_set():
                return
            if self._state is RunnerState.RUNNING:
                self._state = RunnerState.PAUSED
                self._message = "Paused."
                self._resume.clear()
            elif self._lost:
                self._resume.clear()

    def resume(self) -> None:
        with self._lock:
            if self._state is RunnerState.PAUSED:
                self._state = RunnerState.RUNNING
                self._message = "Running."
                self._resume.set()
            elif self._lost:
                self._resume.set()

    def request_stop(self) -> None:
        """Ask the line to stop after the current part (safe from any thread or a signal handler);
        `stop()` then finishes the job."""
        self._stop.set()

    def stop(self, timeout_s: float = 30.0, close_cameras: bool = True) -> RunnerStatus:
        """Stop between parts: frames already grabbed are inspected and every result committed. The
        cameras stop grabbing and close (with `close_cameras`; else the caller closes them)."""
        with self._lock:
            if self._state in (RunnerState.RUNNING, RunnerState.PAUSED):
                self._state, self._message = RunnerState.STOPPING, "Stopping."
            self._stop.set()
            self._resume.set()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout_s)
        self.writer.close()
        for cam in self.cameras:
            try:
                cam.stop()
            except CameraError as exc:
                log.warning("stopping camera %s: %s", cam.camera_id, exc)
            if close_cameras:
                cam.close()
        if self.state is not RunnerState.FAULTED:
            self._set_state(RunnerState.IDLE, self._end_message())
        return self.status()

    def _end_message(self) -> str:
        s = self.status()
        return f"Stopped after {s.parts} parts ({s.recorded} recorded)."

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until `max_parts` are inspected, the run faults for good, or stop() is called (a
        camera being reconnected does not end the wait)."""
        return self._inspected_all.wait(timeout_s)

    # -- grab threads (one per camera) ---------------------------------------------------------
    def _grab_loop(self, k: int) -> None:
        try:
            while True:
                try:
                    self._grab_frames(k)
                    return
                except CameraRemovedError:
                    if not self._reconnect(k):
                        return
        except CameraError as exc:
            self._fault(f"{exc} Inspection stopped.", "camera")
            self._stop.set()  # (the other cameras' parts could not be complete)
        except Exception as exc:  # never let a grab thread die silently
            log.exception("grab thread failed")
            self._fault(f"The camera thread failed: {exc}.", "camera")
            self._stop.set()
        finally:
            with self._cond:
                self._grabbing -= 1
                if self._grabbing == 0:
                    self._grab_done.set()
                self._cond.notify_all()

    def _grab_frames(self, k: int) -> None:
        """Grab camera k into its queue until stopped or `max_parts` are accepted; CameraRemovedError
        when the camera is lost. Frame ids count from the first frame of each call (a reconnected
        camera may count from 0 again)."""
        cam = self.cameras[k]
        last_id: int | None = None
        failed_since = 0
        # With a software trigger the station decides when a part is imaged: trigger only when
        # the queue has room, so nothing is dropped. Free-run and hardware-triggered frames come
        # when they come; a full queue then drops its oldest view.
        paced = self.recipe.camera.trigger is TriggerMode.SOFTWARE
        while not self._stop.is_set():
            with self._lock:
                enough = self.max_parts is not None and self._accepted[k] >= self.max_parts
            if enough:  # (until the parts are inspected: a view dropped meanwhile is taken again)
                self._stop.wait(0.05)
                continue
            if not self._resume.is_set():
                last_id = self._pause_grabbing(cam)
                continue
            if paced and not self._wait_for_room(k):
                break
            if self.trigger_gate is not None:
                if skipped := self.trigger_gate.skipped(k):  # parts this camera will not image: holes in its index
                    with self._cond:
                        self._index[k] += skipped
                if not self.trigger_gate.take(k, 0.1):
                    continue
            t0 = time.perf_counter()
            try:
                frame = cam.grab(timeout_s=0.5)
            except GrabTimeout as exc:
                if self.trigger_gate is not None and isinstance(exc, TriggerNotReady):
                    self.trigger_gate.give_back(
                        k
                    )  # (not fired: fire it when the camera is ready; a fired one is not fired twice)
                continue
            except GrabFailed as exc:
                failed_since += 1
                with self._cond:
                    self._index[k] += 1  # this part has no view from camera k
                with self._lock:
                    self._failed += 1
                log.warning("%s", exc)
                if failed_since >= MAX_FAILED_IN_A_ROW:
                    raise CameraError(f"{MAX_FAILED_IN_A_ROW} frames in a row failed, the last with: {exc}") from exc
                continue
            if last_id is not None and frame.frame_id > last_id + 1:
                skipped = frame.frame_id - last_id - 1 - failed_since
                if skipped > 0:  # the camera delivered frames we never got (buffers full)
                    with self._cond:
                        self._index[k] += skipped
                    with self._lock:
                        self._dropped += skipped
            last_id, failed_since = frame.frame_id, 0
            # Latency runs from the moment the part was imaged: the software trigger we fired,
            # else the frame's arrival (waiting for a free-running or triggered frame is idle time).
            if not paced:
                t0 = frame.grabbed_at
            self._accept(k, self._prepare(frame, t0))

    def _prepare(self, frame: Frame, t0: float) -> _View:
        """A grabbed frame, preprocessed for the network here, on its camera's thread."""
        try:
            data, error = self.inspector.preprocess(frame.image), ""
        except Exception as exc:  # a model failure on one part: recorded for a person to look at
            log.exception("preprocessing failed on frame %s", frame.frame_id)
            data, error = None, f"Model failed: {exc}"
        return _View(frame, t0, data, error, time.perf_counter())

    def _accept(self, k: int, view: _View) -> None:
        """Queue camera k's view for the network, with its part index (a full queue drops its oldest
        view first: the other views of that part are then dropped as they reach the network)."""
        with self._cond:
            view.index = self._index[k]
            self._index[k] += 1
            if len(self._views[k]) >= self.config.queue_size:
                self._views[k].popleft()
                with self._lock:
                    self._dropped += 1
                    self._accepted[k] -= 1
            self._views[k].append(view)
            with self._lock:
                self._accepted[k] += 1
            self._cond.notify_all()

    def _pause_grabbing(self, cam: Camera) -> None:
        """Paused: the camera stops (a free-running camera would otherwise fill its buffers and
        drop frames) until resume or stop; returns the frame id to count drops from (none).
        A camera lost meanwhile raises CameraRemovedError."""
        cam.stop()
        while not self._resume.wait(0.2) and not self._stop.is_set():
            if cam.removed:
                raise CameraRemovedError(f"Camera {cam.camera_id} was disconnected.")
        if not self._stop.is_set():
            cam.start()
        return None

    def _reconnect(self, k: int) -> bool:
        """Camera k was lost: fault, then try to bring it back every RECONNECT_INTERVAL_S. True once
        it is back (the runner goes on as it was, running or paused, once no camera is lost), False
        if the line was stopped first (or something else faulted it). A camera that is back but
        refuses the recipe's settings raises CameraError (the run ends). With several cameras, the
        views the others took while it was gone are dropped when it is back: no part is inspected
        without all its views."""
        cam = self.cameras[k]
        camera_id = cam.camera_id
        lost_at = time.perf_counter()
        with self._lock:
            if self._stop.is_set():  # lost while stopping: nothing left to grab for
                return False
            self._losses += 1
            times = f" ({self._losses} times in this run)" if self._losses > 1 else ""
            lost = f"Camera {camera_id} was disconnected{times}; inspection resumes as soon as it is back."
            self._state, self._message, self._fault_kind = RunnerState.FAULTED, lost, "camera"
            self._lost.add(k)
            self._camera_lost = lost
        log.error("%s", lost)
        tries = 0
        why: str | None = "the line was stopped"
        while not self._stop.is_set():
            tries += 1
            why = self._reopen_camera(cam)
            if why is None:
                break
            (log.warning if tries == 1 else log.debug)("camera %s not back yet (try %d): %s", camera_id, tries, why)
            self._stop.wait(RECONNECT_INTERVAL_S)
        down_s = time.perf_counter() - lost_at
        if why is None:
            with self._cond:  # parts the other cameras took meanwhile have no view from this one: they are dropped
                self._index[k] = max(self._index)
        with self._lock:
            self._lost.discard(k)
            if self._state is not RunnerState.FAULTED or self._fault_kind != "camera":
                return False  # another fault (the record) took over and stopped the line
            if why is not None:
                self._message = (
                    f"Camera {camera_id} was disconnected and was not back when the line was stopped "
                    f"{down_s:.1f} s later; every part inspected was recorded."
                )
                return False
            self._reconnects += 1
            back = f"Camera {cam.camera_id} reconnected after {down_s:.1f} s"
            if self._lost:  # another camera of the station is still gone
                self._camera_back = f"{back}; inspection resumes when every camera is back."
                log.warning("%s", self._camera_back)
                return True
            self._fault_kind = ""
            if self._stop.is_set():
                self._state, back = RunnerState.STOPPING, f"{back}; the line is stopping."
            elif self._resume.is_set():
                self._state, back = RunnerState.RUNNING, f"{back}; inspection resumed."
            else:
                self._state, back = RunnerState.PAUSED, f"{back}; the line is paused."
            self._message = self._camera_back = back
        log.warning("%s", back)
        return True

    def _reopen_camera(self, cam: Camera) -> str | None:
        """One try at bringing a lost camera back: close, open (re-enumerate, attach), the recipe's
        settings and `.pfs` file, start. None when it is back, else why not (not found, lost again)."""
        try:
            cam.close()
            cam.open()
        except CameraError as exc:  # not back (yet): not found, not openable while it boots
            return str(exc)
        try:
            apply_recipe(cam, self.recipe)
            cam.start()
        except CameraError as exc:
            if isinstance(exc, CameraRemovedError) or cam.removed:  # lost again meanwhile
                return str(exc)
            raise
        return None

    def _wait_for_room(self, k: int) -> bool:
        """Paced mode: trigger only while fewer views wait than the network takes at once (one in
        latency mode: the next part is imaged while this one is inspected)."""
        with self._cond:
            while len(self._views[k]) >= self._room:
                if self._stop.is_set():
                    return False
                self._cond.wait(0.2)
        return not self._stop.is_set()

    def _on_write_error(self, exc: Exception) -> None:
        self._fault(
            f"Inspection results cannot be recorded ({exc}); the line is stopped so that no part goes unrecorded.",
            "record",
        )
        self._stop.set()

    def _fault(self, message: str, kind: str) -> None:
        log.error("%s", message)
        with self._lock:
            self._state = RunnerState.FAULTED
            self._message = message
            self._fault_kind = kind
            self._lost.clear()  # a fault for good: no camera comes back from it
            self._resume.set()  # a paused grab thread must see the fault and end

    # -- the network thread ----------------------------------------------------------------
    def _next_parts(self) -> list[list[_View]] | None:
        """The next part (the views of one index, one per camera) or, in throughput mode, as many
        waiting parts as fit in a micro-batch; None once every camera has stopped and no whole part
        is left. A view whose part lacks another camera's view (failed, skipped, dropped from a full
        queue, taken while a camera was lost) is dropped and counted, never paired with another part."""
        with self._cond:
            parts: list[list[_View]] = []
            while len(parts) < self._parts_per_call:
                self._drop_unpaired()
                if all(self._views):
                    parts.append([v.popleft() for v in self._views])
                    continue
                if parts:
                    break  # a micro-batch takes what is waiting; it never waits for more
                if self._grab_done.is_set():
                    left = sum(len(v) for v in self._views)
                    for v in self._views:
                        v.clear()
                    if left:
                        with self._lock:
                            self._dropped += left
                    return None
                self._cond.wait(0.2)
            self._cond.notify_all()
            return parts

    def _drop_unpaired(self) -> None:
        """Drop (and count) the views at the heads of the queues whose part some camera has already
        passed: every camera's views come in index order, so those parts can never be whole."""
        if len(self._views) == 1:
            return
        while all(self._views):
            top = max(v[0].index for v in self._views)
            behind = [k for k, v in enumerate(self._views) if v[0].index < top]
            if not behind:
                return
            for k in behind:
                self._views[k].popleft()
                with self._lock:
                    self._dropped += 1
                    self._accepted[k] -= 1

    def _network_loop(self) -> None:
        try:
            while (parts := self._next_parts()) is not None:
                views = [v for part in parts for v in part if not v.error]
                t0 = time.perf_counter()
                if views and not self._forward(views) and len(views) > 1:
                    for v in views:  # the batch failed: each view alone, so that one bad view fails alone
                        v.error = ""
                        self._forward([v])
                t1 = time.perf_counter()
                for part in parts:
                    for v in part:
                        v.t_forward, v.t_forwarded = t0, t1
                self._post.put(parts)
        except Exception as exc:  # never let the network thread die silently
            log.exception("network thread failed")
            self._fault(f"The inspection thread failed: {exc}.", "inspection")
            self._stop.set()
        finally:
            self._post.put(None)

    def _forward(self, views: list[_View]) -> bool:
        """The network on these views' inputs, each view's `data` then its raw output; on a model
        failure each gets the error (its part is recorded for a person to look at) and False."""
        try:
            outs = self.inspector.forward([v.data for v in views])
            if len(outs) != len(views):
                raise RuntimeError(f"the network gave {len(outs)} outputs for {len(views)} views")
        except Exception as exc:
            log.exception("model failed on %d views", len(views))
            for v in views:
                v.error = f"Model failed: {exc}"
            return False
        for v, out in zip(views, outs):
            v.data = out
        return True

    # -- the inspection thread ---------------------------------------------------------------
    def _inspect_loop(self) -> None:
        lost = 0  # views never recorded because this thread failed
        try:
            while (parts := self._post.get()) is not None:
                for i, part in enumerate(parts):
                    try:
                        self._inspect_part(part)
                    except Exception:
                        lost += sum(len(p) for p in parts[i:])
                        raise
        except Exception as exc:  # never let the inspection thread die silently
            log.exception("inspection thread failed")
            self._fault(f"The inspection thread failed: {exc}.", "inspection")
            self._stop.set()
            while (parts := self._post.get()) is not None:  # let the network thread finish
                lost += sum(len(p) for p in parts)
        finally:
            if lost:
                with self._lock:
                    self._dropped += lost
            self._inspected_all.set()

    def _inspect_part(self, part: list[_View]) -> None:
        results = [self._finish(v) for v in part]
        part_verdict = worst(verdict for verdict, *_ in results)
        with self._lock:
            seq = sum(self._counts.values()) + 1
        info = self.inspector.info
        several = len(part) > 1
        lot = self.lot_id
        out = []
        for k, (v, (verdict, score, classes, mask, amap, error, t_end)) in enumerate(zip(part, results)):
            f = v.frame
            out.append(
                InspectionResult(
                    part_id=uuid.uuid4().hex,
                    seq=seq,
                    run_id=self.run_id,
                    timestamp=f.timestamp,
                    camera_id=f.camera_id,
                    frame_id=f.frame_id,
                    recipe=self.recipe.name,
                    model_name=info.name,
                    model_version=info.version,
                    model_sha256=info.sha256,
                    score=score,
                    verdict=verdict,
                    classes=classes,
                    image=f.image,
                    defect_mask=mask,
                    anomaly_map=amap,
                    timing=Timing(
                        grab_ms=(f.grabbed_at - v.t0) * 1000,
                        preprocess_ms=(v.t_prepared - f.grabbed_at) * 1000,
                        queue_ms=(v.t_forward - v.t_prepared) * 1000,
                        infer_ms=(v.t_forwarded - v.t_forward) * 1000,
                        decide_ms=(t_end - v.t_forwarded) * 1000,
                        total_ms=(t_end - v.t0) * 1000,
                    ),
                    error=error,
                    view=k,
                    part_verdict=part_verdict if several else None,
                    recipe_version=self.recipe_version,
                    lot_id=lot,
                    t0=part[0].t0,
                )
            )
        t_put = time.perf_counter()
        for r in out:
            self.writer.put(r)
        put_s = time.perf_counter() - t_put
        with self._lock:
            self._put_s += put_s
            self._counts[part_verdict] += 1
            self._latencies.extend(r.timing.total_ms for r in out)
            self._t_last = time.perf_counter()
            reached = self.max_parts is not None and sum(self._counts.values()) >= self.max_parts
        for r in out:
            self._emit(r)
        if reached:
            self._stop.set()

    def _finish(self, v: _View) -> tuple[Verdict, float, tuple, np.ndarray, np.ndarray, str, float]:
        """(verdict, score, classes, mask, map, error, time done) of one view: the model's
        post-processing and the recipe's decision."""
        shape = v.frame.image.shape
        if not v.error:
            try:
                prediction = self.inspector.finish(v.data, shape)
                verdict = decide(prediction, self.thresholds, self.recipe.min_defect_area_px, self.recipe.class_limits)
                return (
                    verdict,
                    prediction.score,
                    prediction.classes,
                    prediction.defect_mask,
                    prediction.anomaly_map,
                    "",
                    time.perf_counter(),
                )
            except Exception as exc:  # a model failure on one part: record it for a person to look at
                log.exception("model failed on frame %s", v.frame.frame_id)
                v.error = f"Model failed: {exc}"
        return (
            Verdict.REVIEW,
            float("nan"),
            (),
            np.zeros(shape[:2], dtype=bool),
            np.zeros(shape[:2], dtype=np.float32),
            v.error,
            time.perf_counter(),
        )


_SEVERITY = {Verdict.OK: 0, Verdict.REVIEW: 1, Verdict.NG: 2}


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """A part's verdict from its views' verdicts: NG if any view is NG, else REVIEW if any is, else OK."""
    return max(verdicts, key=_SEVERITY.__getitem__)


@dataclasses.dataclass(eq=False)
class _View:
    """One camera's view of a part on its way through the pipeline (each stage's thread fills in its part)."""

    frame: Frame
    t0: float  # latency origin: the software trigger, else the frame's arrival
    data: Any  # preprocessed input, then the network's raw output; None once it failed
    error: str  # why the model failed on this view ("" when it did not)
    t_prepared: float
    index: int = 0  # the part it belongs to: the views of a part have the same index
    t_forward: float = 0.0
    t_forwarded: float = 0.0
