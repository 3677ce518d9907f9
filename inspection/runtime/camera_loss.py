"""How a run survives a lost camera: the run is faulted (camera) but goes on, the camera is tried
every `RECONNECT_INTERVAL_S` until it is back (re-enumerated, reopened, the recipe's settings
reapplied), and the run then resumes as it was - running or paused - once no camera is lost.

`CameraLoss` is a part of `Runner` (its base class), kept apart so that a reader can take the
reconnection on its own; it works on the runner's state, declared below.
"""

from __future__ import annotations

import logging
import threading
import time

from camera.base import Camera
from inspection.runtime.station import reopen_camera
from inspection.runtime.status import RunnerState
from inspection.settings.recipe import Recipe

log = logging.getLogger(__name__)

RECONNECT_INTERVAL_S = 0.5  # a lost camera is tried again this often


class CameraLoss:
    """The reconnection of a lost camera, on the runner's state."""

    cameras: list[Camera]
    recipe: Recipe
    _lock: threading.Lock
    _cond: threading.Condition
    _stop: threading.Event
    _resume: threading.Event
    _state: RunnerState
    _message: str
    _fault_kind: str
    _losses: int
    _reconnects: int
    _lost: set[int]
    _camera_lost: str
    _camera_back: str
    _index: list[int]

    def _notify(self) -> None:
        """Publish a state change (the runner's)."""
        raise NotImplementedError

    def _reconnect(self, k: int) -> bool:
        """Camera k was lost: fault, then try to bring it back every RECONNECT_INTERVAL_S. True once
        it is back (the runner goes on as it was, running or paused, once no camera is lost), False
        if the line was stopped first (or something else faulted it). A camera that is back but
        refuses the recipe's settings raises CameraError (the run ends). With several cameras, the
        views the others took while it was gone are dropped when it is back: no part is inspected
        without all its views."""
        lost_at = time.perf_counter()
        if not self._fault_for_loss(k):
            return False
        why = self._bring_back(self.cameras[k])
        down_s = time.perf_counter() - lost_at
        if why is None:
            with self._cond:  # parts the other cameras took meanwhile have no view from this one: they are dropped
                self._index[k] = max(self._index)
        return self._after_loss(k, why, down_s)

    def _fault_for_loss(self, k: int) -> bool:
        """Fault the run for camera k's loss (the message counts the run's losses); False when the
        line was stopping anyway (nothing left to grab for)."""
        camera_id = self.cameras[k].camera_id
        with self._lock:
            if self._stop.is_set():
                return False
            self._losses += 1
            times = f" ({self._losses} times in this run)" if self._losses > 1 else ""
            lost = f"Camera {camera_id} was disconnected{times}; inspection resumes as soon as it is back."
            self._state, self._message, self._fault_kind = RunnerState.FAULTED, lost, "camera"
            self._lost.add(k)
            self._camera_lost = lost
        log.error("%s", lost)
        self._notify()
        return True

    def _bring_back(self, cam: Camera) -> str | None:
        """Reopen `cam` every RECONNECT_INTERVAL_S until it is back (None) or the line is stopped
        (why it is not back)."""
        tries = 0
        why: str | None = "the line was stopped"
        while not self._stop.is_set():
            tries += 1
            why = reopen_camera(cam, self.recipe)
            if why is None:
                break
            (log.warning if tries == 1 else log.debug)("camera %s not back yet (try %d): %s", cam.camera_id, tries, why)
            self._stop.wait(RECONNECT_INTERVAL_S)
        return why

    def _after_loss(self, k: int, why: str | None, down_s: float) -> bool:
        """The run's state once camera k is back (`why` None) or the line was stopped without it."""
        camera_id = self.cameras[k].camera_id
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
            back = f"Camera {camera_id} reconnected after {down_s:.1f} s"
            if self._lost:  # another camera of the station is still gone
                self._camera_back = f"{back}; inspection resumes when every camera is back."
                log.warning("%s", self._camera_back)
                return True  # (still faulted: nothing to publish)
            self._fault_kind = ""
            if self._stop.is_set():
                self._state, back = RunnerState.STOPPING, f"{back}; the line is stopping."
            elif self._resume.is_set():
                self._state, back = RunnerState.RUNNING, f"{back}; inspection resumed."
            else:
                self._state, back = RunnerState.PAUSED, f"{back}; the line is paused."
            self._message = self._camera_back = back
        log.warning("%s", back)
        self._notify()
        return True
