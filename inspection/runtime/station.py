"""The station's cameras as a recipe sets them: the recipe's camera settings applied, the station
checked against the recipe, a lost camera brought back, and the trigger gate a PLC fires the
software trigger through."""

from __future__ import annotations

import logging
import threading

from camera.base import Camera, TriggerMode
from camera.errors import CameraError, CameraRemovedError
from inspection.errors import ConfigError
from inspection.settings.recipe import Recipe

log = logging.getLogger(__name__)


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


def reopen_camera(cam: Camera, recipe: Recipe) -> str | None:
    """One try at bringing a lost camera back: close, open (re-enumerate, attach), the recipe's
    settings and `.pfs` file, start. None when it is back, else why not (not found, lost again)."""
    try:
        cam.close()
        cam.open()
    except CameraError as exc:  # not back (yet): not found, not openable while it boots
        return str(exc)
    try:
        apply_recipe(cam, recipe)
        cam.start()
    except CameraError as exc:
        if isinstance(exc, CameraRemovedError) or cam.removed:  # lost again meanwhile
            return str(exc)
        raise
    return None
