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
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from camera.base import Camera, Frame, TriggerMode
from camera.errors import CameraError, CameraRemovedError, GrabFailed, GrabTimeout, TriggerNotReady
from inspection.record.writer import ResultWriter
from inspection.result import InspectionResult, Verdict
from inspection.runtime.camera_loss import CameraLoss
from inspection.runtime.events import RunStateChanged
from inspection.runtime.part import PartStamp, View, finish_view, part_results
from inspection.runtime.station import TriggerGate, apply_recipe, check_station
from inspection.runtime.status import RunnerState, RunnerStatus
from inspection.runtime.verdict import thresholds_in_force
from inspection.settings.config import Config
from inspection.settings.recipe import Recipe
from models.base import Inspector

log = logging.getLogger(__name__)

MAX_FAILED_IN_A_ROW = 25  # failed grabs in a row that fault the run (unreadable images, a failing camera)


ResultListener = Callable[[InspectionResult], None]


class Runner(CameraLoss):
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
        on_state: Callable[[RunStateChanged], None] | None = None,
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
        self._result_listeners = result_listeners  # (read live: a listener added during the run gets the next results)
        self._on_state = on_state
        self._published: RunnerState | None = None  # the state last published to `on_state`
        self._init_pipeline(len(self.cameras))
        self._init_counters(len(self.cameras))
        writer.on_error = self._on_write_error

    def _init_pipeline(self, n: int) -> None:
        """The queues and indexes between the pipeline's threads, for `n` cameras."""
        # Views waiting for the network, a queue per camera; a part is the head of every queue.
        self._views: list[collections.deque[View]] = [collections.deque() for _ in range(n)]
        # Each camera's next part index: the views of a part share it. It counts every frame a camera
        # was to deliver - grabbed, failed, or skipped by the camera - so a lost view leaves a hole and
        # its part's other views are dropped instead of being paired with the next part's.
        self._index = [0] * n
        # Parts per network call: one in latency mode; in throughput mode as many as max_batch views
        # hold (at least one whole part). A paced camera keeps that many views waiting, never more
        # than its queue holds (so a software-triggered line drops nothing).
        self._parts_per_call = 1 if self.config.mode == "latency" else max(1, self.config.max_batch // n)
        self._room = min(self._parts_per_call, self.config.queue_size)
        self._post: queue.Queue[list[list[View]] | None] = queue.Queue(maxsize=2)
        self._cond = threading.Condition()

    def _init_counters(self, n: int) -> None:
        """The run's state, its events and what it counts, for `n` cameras."""
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
        self._notify()

    def _notify(self) -> None:
        """Publish the state to `on_state` if it changed since last published (outside the lock)."""
        if self._on_state is None:
            return
        with self._lock:
            state, message = self._state, self._message
            if state is self._published:
                return
            self._published = state
        self._on_state(RunStateChanged(self.run_id, state.value, message))

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
        self._notify()

    def resume(self) -> None:
        with self._lock:
            if self._state is RunnerState.PAUSED:
                self._state = RunnerState.RUNNING
                self._message = "Running."
                self._resume.set()
            elif self._lost:
                self._resume.set()
        self._notify()

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
        self._notify()
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
                self._pause_grabbing(cam)
                last_id = None  # (frame ids after a pause count no drops)
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
                    # (not fired: fire it when the camera is ready; a fired one is not fired twice)
                    self.trigger_gate.give_back(k)
                continue
            except GrabFailed as exc:
                failed_since += 1
                self._lose_view(k, exc, failed_since)
                continue
            if last_id is not None and frame.frame_id > last_id + 1:
                self._count_skipped(k, frame.frame_id - last_id - 1 - failed_since)
            last_id, failed_since = frame.frame_id, 0
            # Latency runs from the moment the part was imaged: the software trigger we fired,
            # else the frame's arrival (waiting for a free-running or triggered frame is idle time).
            if not paced:
                t0 = frame.grabbed_at
            self._accept(k, self._prepare(frame, t0))

    def _lose_view(self, k: int, exc: GrabFailed, failed_in_a_row: int) -> None:
        """A failed grab: its part has no view from camera k (a hole in its index), counted; CameraError
        after MAX_FAILED_IN_A_ROW in a row."""
        with self._cond:
            self._index[k] += 1
        with self._lock:
            self._failed += 1
        log.warning("%s", exc)
        if failed_in_a_row >= MAX_FAILED_IN_A_ROW:
            raise CameraError(f"{MAX_FAILED_IN_A_ROW} frames in a row failed, the last with: {exc}") from exc

    def _count_skipped(self, k: int, skipped: int) -> None:
        """Frames camera k delivered that we never got (its buffers were full): holes in its index, dropped."""
        if skipped > 0:
            with self._cond:
                self._index[k] += skipped
            with self._lock:
                self._dropped += skipped

    def _prepare(self, frame: Frame, t0: float) -> View:
        """A grabbed frame, preprocessed for the network here, on its camera's thread."""
        try:
            data, error = self.inspector.preprocess(frame.image), ""
        except Exception as exc:  # a model failure on one part: recorded for a person to look at
            log.exception("preprocessing failed on frame %s", frame.frame_id)
            data, error = None, f"Model failed: {exc}"
        return View(frame, t0, data, error, time.perf_counter())

    def _accept(self, k: int, view: View) -> None:
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
        drop frames) until resume or stop. A camera lost meanwhile raises CameraRemovedError."""
        cam.stop()
        while not self._resume.wait(0.2) and not self._stop.is_set():
            if cam.removed:
                raise CameraRemovedError(f"Camera {cam.camera_id} was disconnected.")
        if not self._stop.is_set():
            cam.start()

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
        self._notify()

    # -- the network thread ----------------------------------------------------------------
    def _next_parts(self) -> list[list[View]] | None:
        """The next part (the views of one index, one per camera) or, in throughput mode, as many
        waiting parts as fit in a micro-batch; None once every camera has stopped and no whole part
        is left. A view whose part lacks another camera's view (failed, skipped, dropped from a full
        queue, taken while a camera was lost) is dropped and counted, never paired with another part."""
        with self._cond:
            parts: list[list[View]] = []
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
                if views and not self._infer(views) and len(views) > 1:
                    for v in views:  # the batch failed: each view alone, so that one bad view fails alone
                        v.error = ""
                        self._infer([v])
                t1 = time.perf_counter()
                for part in parts:
                    for v in part:
                        v.t_infer, v.t_inferred = t0, t1
                self._post.put(parts)
        except Exception as exc:  # never let the network thread die silently
            log.exception("network thread failed")
            self._fault(f"The inspection thread failed: {exc}.", "inspection")
            self._stop.set()
        finally:
            self._post.put(None)

    def _infer(self, views: list[View]) -> bool:
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
        for v, out in zip(views, outs, strict=True):  # (their lengths were checked above)
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

    def _inspect_part(self, part: list[View]) -> None:
        outcomes = [finish_view(self.inspector, self.thresholds, self.recipe, v) for v in part]
        with self._lock:
            seq = sum(self._counts.values()) + 1
        stamp = PartStamp(self.run_id, seq, self.recipe.name, self.recipe_version, self.lot_id, self.inspector.info)
        part_verdict, out = part_results(part, outcomes, stamp)
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
