"""The line runner: camera grab thread -> bounded queue -> inspection worker -> writer thread.

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
import threading
import time
import uuid
from collections.abc import Callable, Sequence

import numpy as np

from camera.base import Camera, Frame, TriggerMode
from camera.errors import CameraError, CameraRemovedError, GrabFailed, GrabTimeout
from inspection.config import Config, Recipe
from inspection.result import InspectionResult, Timing, Verdict
from inspection.verdict import decide, thresholds_in_force
from inspection.writer import ResultWriter
from models.base import Inspector

log = logging.getLogger(__name__)

MAX_FAILED_IN_A_ROW = 25  # failed grabs in a row that fault the run (unreadable images, a failing camera)
RECONNECT_INTERVAL_S = 0.5  # a lost camera is tried again this often


def apply_recipe(camera: Camera, recipe: Recipe) -> None:
    """The recipe's camera settings, then its `.pfs` file (the camera open, not grabbing)."""
    camera.configure(recipe.camera)
    if recipe.settings_file is not None:
        camera.load_settings(recipe.settings_file)


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

    @property
    def active(self) -> bool:
        """The run goes on: running, paused, stopping, or faulted while its camera is being reconnected."""
        return self.state in (RunnerState.RUNNING, RunnerState.PAUSED, RunnerState.STOPPING) or self.reconnecting


ResultListener = Callable[[InspectionResult], None]


class Runner:
    """Runs one camera, one model and one recipe into one store until stopped, faulted for good
    (a lost camera is reconnected instead), or `max_parts` parts are inspected. Construct, `start()`, then `wait()` or `stop()`.
    Result listeners run on the inspection thread: they must be quick and must not touch Qt
    widgets. State is read by polling `status()`."""

    def __init__(self, camera: Camera, inspector: Inspector, recipe: Recipe, writer: ResultWriter, config: Config,
                 *, run_id: int, max_parts: int | None = None,
                 result_listeners: Sequence[ResultListener] = ()) -> None:
        self.camera = camera
        self.inspector = inspector
        self.recipe = recipe
        self.writer = writer
        self.config = config
        self.run_id = run_id
        self.max_parts = max_parts
        self.thresholds = thresholds_in_force(recipe, inspector.info)
        self._queue: collections.deque[tuple[Frame, float]] = collections.deque()
        self._cond = threading.Condition()
        self._lock = threading.Lock()
        self._state = RunnerState.IDLE
        self._message = ""
        self._fault_kind = ""
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._grab_done = threading.Event()
        self._inspected_all = threading.Event()
        self._counts = {v: 0 for v in Verdict}
        self._dropped = 0
        self._failed = 0
        self._accepted = 0
        self._losses = 0
        self._reconnects = 0
        self._reconnecting = False
        self._camera_lost = ""
        self._camera_back = ""
        self._latencies: collections.deque[float] = collections.deque(maxlen=2000)
        self._t_start = 0.0
        self._t_last = 0.0
        self._threads: list[threading.Thread] = []
        self._result_listeners = list(result_listeners)
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
                reconnecting=self._reconnecting,
                camera_lost=self._camera_lost,
                camera_back=self._camera_back,
                images_missing=images_missing,
                image_error=image_error,
            )

    # -- control -------------------------------------------------------------------------
    def start(self) -> None:
        """Open and configure the camera (if needed), start grabbing and the threads.
        Raises CameraError if the camera cannot be opened; the runner then stays idle."""
        if self.state is not RunnerState.IDLE:
            raise RuntimeError("a runner starts once")
        if not self.camera.is_open:
            self.camera.open()
        apply_recipe(self.camera, self.recipe)
        self.writer.start()
        self.camera.start()
        self._t_start = time.perf_counter()
        self._threads = [
            threading.Thread(target=self._grab_loop, name="lepton-grab", daemon=True),
            threading.Thread(target=self._inspect_loop, name="lepton-inspect", daemon=True),
        ]
        self._set_state(RunnerState.RUNNING, "Running.")
        for t in self._threads:
            t.start()

    def pause(self) -> None:
        """Stop grabbing after the current part; frames already grabbed are still inspected. While
        the camera is being reconnected, the line comes back paused."""
        with self._lock:  # (stop and fault change the state under the same lock: no pause after a stop)
            if self._stop.is_set():
                return
            if self._state is RunnerState.RUNNING:
                self._state = RunnerState.PAUSED
                self._message = "Paused."
                self._resume.clear()
            elif self._reconnecting:
                self._resume.clear()

    def resume(self) -> None:
        with self._lock:
            if self._state is RunnerState.PAUSED:
                self._state = RunnerState.RUNNING
                self._message = "Running."
                self._resume.set()
            elif self._reconnecting:
                self._resume.set()

    def request_stop(self) -> None:
        """Ask the line to stop after the current part (safe from any thread or a signal handler);
        `stop()` then finishes the job."""
        self._stop.set()

    def stop(self, timeout_s: float = 30.0) -> RunnerStatus:
        """Stop between parts: frames already grabbed are inspected and every result committed."""
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
        try:
            self.camera.stop()
        except CameraError as exc:
            log.warning("stopping camera: %s", exc)
        self.camera.close()
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

    # -- threads -------------------------------------------------------------------------
    def _grab_loop(self) -> None:
        try:
            while True:
                try:
                    self._grab_frames()
                    return
                except CameraRemovedError:
                    if not self._reconnect():
                        return
        except CameraError as exc:
            self._fault(f"{exc} Inspection stopped.", "camera")
        except Exception as exc:  # never let the grab thread die silently
            log.exception("grab thread failed")
            self._fault(f"The camera thread failed: {exc}.", "camera")
        finally:
            self._grab_done.set()
            with self._cond:
                self._cond.notify_all()

    def _grab_frames(self) -> None:
        """Grab into the queue until stopped or `max_parts` are accepted; CameraRemovedError when
        the camera is lost. Frame ids count from the first frame of each call (a reconnected
        camera may count from 0 again)."""
        last_id: int | None = None
        failed_since = 0
        # With a software trigger the station decides when a part is imaged: trigger only when
        # the queue has room, so nothing is dropped. Free-run and hardware-triggered frames come
        # when they come; a full queue then drops its oldest frame.
        paced = self.recipe.camera.trigger is TriggerMode.SOFTWARE
        while not self._stop.is_set():
            with self._lock:
                if self.max_parts is not None and self._accepted >= self.max_parts:
                    break
            if not self._resume.is_set():
                last_id = self._pause_grabbing()
                continue
            if paced and not self._wait_for_room():
                break
            t0 = time.perf_counter()
            try:
                frame = self.camera.grab(timeout_s=0.5)
            except GrabTimeout:
                continue
            except GrabFailed as exc:
                failed_since += 1
                with self._lock:
                    self._failed += 1
                log.warning("%s", exc)
                if failed_since >= MAX_FAILED_IN_A_ROW:
                    raise CameraError(f"{MAX_FAILED_IN_A_ROW} frames in a row failed, the last with: {exc}") from exc
                continue
            if last_id is not None and frame.frame_id > last_id + 1:
                skipped = frame.frame_id - last_id - 1 - failed_since
                if skipped > 0:  # the camera delivered frames we never got (buffers full)
                    with self._lock:
                        self._dropped += skipped
            last_id, failed_since = frame.frame_id, 0
            # Latency runs from the moment the part was imaged: the software trigger we fired,
            # else the frame's arrival (waiting for a free-running or triggered frame is idle time).
            if not paced:
                t0 = frame.grabbed_at
            with self._cond:
                if len(self._queue) >= self.config.queue_size:
                    self._queue.popleft()  # drop the oldest waiting frame, and count it
                    with self._lock:
                        self._dropped += 1
                        self._accepted -= 1
                self._queue.append((frame, t0))
                with self._lock:
                    self._accepted += 1
                self._cond.notify()

    def _pause_grabbing(self) -> None:
        """Paused: the camera stops (a free-running camera would otherwise fill its buffers and
        drop frames) until resume or stop; returns the frame id to count drops from (none).
        A camera lost meanwhile raises CameraRemovedError."""
        self.camera.stop()
        while not self._resume.wait(0.2) and not self._stop.is_set():
            if self.camera.removed:
                raise CameraRemovedError(f"Camera {self.camera.camera_id} was disconnected.")
        if not self._stop.is_set():
            self.camera.start()
        return None

    def _reconnect(self) -> bool:
        """The camera was lost: fault, then try to bring it back every RECONNECT_INTERVAL_S. True
        once it is back (the runner goes on as it was, running or paused), False if the line was
        stopped first (or something else faulted it). A camera that is back but refuses the
        recipe's settings raises CameraError (the run ends)."""
        camera_id = self.camera.camera_id
        lost_at = time.perf_counter()
        with self._lock:
            if self._stop.is_set():  # lost while stopping: nothing left to grab for
                return False
            self._losses += 1
            times = f" ({self._losses} times in this run)" if self._losses > 1 else ""
            lost = f"Camera {camera_id} was disconnected{times}; inspection resumes as soon as it is back."
            self._state, self._message, self._fault_kind = RunnerState.FAULTED, lost, "camera"
            self._reconnecting = True
            self._camera_lost = lost
        log.error("%s", lost)
        tries = 0
        why: str | None = "the line was stopped"
        while not self._stop.is_set():
            tries += 1
            why = self._reopen_camera()
            if why is None:
                break
            (log.warning if tries == 1 else log.debug)("camera %s not back yet (try %d): %s", camera_id, tries, why)
            self._stop.wait(RECONNECT_INTERVAL_S)
        down_s = time.perf_counter() - lost_at
        with self._lock:
            self._reconnecting = False
            if self._state is not RunnerState.FAULTED or self._fault_kind != "camera":
                return False  # another fault (the record) took over and stopped the line
            if why is not None:
                self._message = (f"Camera {camera_id} was disconnected and was not back when the line was stopped "
                                 f"{down_s:.1f} s later; every part inspected was recorded.")
                return False
            self._fault_kind = ""
            self._reconnects += 1
            back = f"Camera {self.camera.camera_id} reconnected after {down_s:.1f} s"
            if self._stop.is_set():
                self._state, back = RunnerState.STOPPING, f"{back}; the line is stopping."
            elif self._resume.is_set():
                self._state, back = RunnerState.RUNNING, f"{back}; inspection resumed."
            else:
                self._state, back = RunnerState.PAUSED, f"{back}; the line is paused."
            self._message = self._camera_back = back
        log.warning("%s", back)
        return True

    def _reopen_camera(self) -> str | None:
        """One try at bringing a lost camera back: close, open (re-enumerate, attach), the recipe's
        settings and `.pfs` file, start. None when it is back, else why not (not found, lost again)."""
        cam = self.camera
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

    def _wait_for_room(self) -> bool:
        """Paced mode: at most one frame waits while the previous one is inspected (low latency)."""
        with self._cond:
            while len(self._queue) >= 1:
                if self._stop.is_set():
                    return False
                self._cond.wait(0.2)
        return not self._stop.is_set()

    def _on_write_error(self, exc: Exception) -> None:
        self._fault(f"Inspection results cannot be recorded ({exc}); the line is stopped so that no part goes unrecorded.", "record")
        self._stop.set()

    def _fault(self, message: str, kind: str) -> None:
        log.error("%s", message)
        with self._lock:
            self._state = RunnerState.FAULTED
            self._message = message
            self._fault_kind = kind
            self._reconnecting = False  # a fault for good: no camera comes back from it
            self._resume.set()  # a paused grab thread must see the fault and end

    def _next_frame(self) -> tuple[Frame, float] | None:
        with self._cond:
            while not self._queue:
                if self._grab_done.is_set():
                    return None
                self._cond.wait(0.2)
            item = self._queue.popleft()
            self._cond.notify_all()
            return item

    def _inspect_loop(self) -> None:
        try:
            self._inspect_frames()
        except Exception as exc:  # never let the inspection thread die silently
            log.exception("inspection thread failed")
            self._fault(f"The inspection thread failed: {exc}.", "inspection")
            self._stop.set()
        finally:
            self._inspected_all.set()

    def _inspect_frames(self) -> None:
        while (item := self._next_frame()) is not None:
            frame, t0 = item
            result = self._inspect(frame, t0)
            self.writer.put(result)
            with self._lock:
                self._counts[result.verdict] += 1
                self._latencies.append(result.timing.total_ms)
                self._t_last = time.perf_counter()
                reached = self.max_parts is not None and sum(self._counts.values()) >= self.max_parts
            self._emit(result)
            if reached:
                self._stop.set()

    def _inspect(self, frame: Frame, t0: float) -> InspectionResult:
        t_deq = time.perf_counter()
        error = ""
        try:
            batch = self.inspector.preprocess(frame.image)
            t_pre = time.perf_counter()
            prediction = self.inspector.infer(batch, frame.image.shape)
            t_inf = time.perf_counter()
            verdict = decide(prediction, self.thresholds, self.recipe.min_defect_area_px, self.recipe.class_limits)
            score, classes = prediction.score, prediction.classes
            mask, amap = prediction.defect_mask, prediction.anomaly_map
        except Exception as exc:  # a model failure on one part: record it for a person to look at
            log.exception("model failed on frame %s", frame.frame_id)
            error = f"Model failed: {exc}"
            t_pre = t_inf = time.perf_counter()
            verdict, score, classes = Verdict.REVIEW, float("nan"), ()
            mask = np.zeros(frame.image.shape[:2], dtype=bool)
            amap = np.zeros(frame.image.shape[:2], dtype=np.float32)
        t_end = time.perf_counter()
        with self._lock:
            seq = sum(self._counts.values()) + 1
        info = self.inspector.info
        return InspectionResult(
            part_id=uuid.uuid4().hex,
            seq=seq,
            run_id=self.run_id,
            timestamp=frame.timestamp,
            camera_id=frame.camera_id,
            frame_id=frame.frame_id,
            recipe=self.recipe.name,
            model_name=info.name,
            model_version=info.version,
            model_sha256=info.sha256,
            score=score,
            verdict=verdict,
            classes=classes,
            image=frame.image,
            defect_mask=mask,
            anomaly_map=amap,
            timing=Timing(
                grab_ms=(frame.grabbed_at - t0) * 1000,
                queue_ms=(t_deq - frame.grabbed_at) * 1000,
                preprocess_ms=(t_pre - t_deq) * 1000,
                infer_ms=(t_inf - t_pre) * 1000,
                decide_ms=(t_end - t_inf) * 1000,
                total_ms=(t_end - t0) * 1000,
            ),
            error=error,
        )
