"""A line: one station spec (one camera, or several joined by `+`), one model, one recipe and one
store, and the runs between them.

`Line` is what the command line and the GUI drive; it builds a `Runner` per start and records
each run's start and end in the store.
"""

from __future__ import annotations

import logging
from importlib import metadata
from pathlib import Path

from camera.base import Camera
from camera.spec import open_cameras
from inspection.alarms import AlarmMonitor
from inspection.config import Config, Recipe, data_dir, default_db, load_config, load_recipe, runner_options
from inspection.retention import Retention
from inspection.shift_reports import ShiftReporter
from inspection.runner import ResultListener, Runner, RunnerState, RunnerStatus, apply_recipe, check_station
from inspection.verdict import thresholds_in_force
from inspection.store import Store, open_store
from inspection.writer import ResultWriter
from models.base import Inspector
from models.package import load_package

log = logging.getLogger(__name__)


def software_version() -> str:
    try:
        return metadata.version("lepton-inspect")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0+unknown"


class Line:
    def __init__(self, *, store: Store, config: Config, recipe: Recipe, camera_spec: str, inspector: Inspector,
                 cameras: list[Camera] | None = None) -> None:
        self.store = store
        self.config = config
        self.recipe = recipe
        self.camera_spec = camera_spec
        self.inspector = inspector
        self.cameras = cameras if cameras is not None else open_cameras(camera_spec)
        self.model_version_id = store.model_version(inspector.info)
        self.thresholds = thresholds_in_force(recipe, inspector.info)
        self.runner: Runner | None = None
        self._last_status: RunnerStatus | None = None
        self.alarms = AlarmMonitor(store, config.alarms, self.status)
        self._result_listeners: list[ResultListener] = [self.alarms.on_result]
        self.alarms.start()
        self.retention = Retention(store, config.retention)
        self.retention.start()
        self.reports: ShiftReporter | None = None
        if config.reports_automatic:
            self.reports = ShiftReporter(store, config, config.reports_folder or data_dir() / "reports")
            self.reports.start()

    @property
    def camera(self) -> Camera:
        """The station's first camera (the only one of a one-camera station)."""
        return self.cameras[0]

    def status(self) -> RunnerStatus | None:
        """The current run's status, else the last run's (None before the first run)."""
        runner = self.runner
        if runner is not None:
            self._last_status = runner.status()
        return self._last_status

    def add_result_listener(self, fn: ResultListener) -> None:
        """Called with every InspectionResult of every run, on the inspection thread."""
        self._result_listeners.append(fn)

    def start(self, max_parts: int | None = None) -> Runner:
        """Open the camera if needed and start a run; CameraError if the camera cannot start."""
        if self.runner is not None and self.runner.status().active:  # (also while its camera is being reconnected)
            raise RuntimeError("the line is already running")
        check_station(len(self.cameras), self.recipe)
        for cam in self.cameras:
            if not cam.is_open:
                cam.open()
        run_id = self.store.start_run(
            line=self.config.line, station=self.config.station, camera_spec=self.camera_spec, recipe=self.recipe.name,
            model_version_id=self.model_version_id, software_version=software_version(),
            ok_below=self.thresholds.ok_below, ng_at=self.thresholds.ng_at,
        )
        writer = ResultWriter(self.store, self.config, self.recipe, self.model_version_id,
                              on_error=lambda exc: log.error("record write failed: %s", exc))
        runner = Runner(self.cameras, self.inspector, self.recipe, writer, self.config, run_id=run_id, max_parts=max_parts,
                        result_listeners=self._result_listeners)
        try:
            runner.start()
        except Exception as exc:
            writer.close()
            for cam in self.cameras:
                cam.close()
            self.store.end_run(run_id, "failed", f"Run {run_id} could not start: {exc}")
            raise
        self.runner = runner
        return runner

    def close(self) -> None:
        """Stop any run, close the camera, the alarm monitor and the store."""
        self.stop()
        if self.reports is not None:
            self.reports.close()
        self.retention.close()
        self.alarms.close()
        for cam in self.cameras:
            cam.close()
        self.store.close()

    def stop(self) -> RunnerStatus | None:
        """Stop the current run (if any), commit everything, and record how it ended."""
        runner = self.runner
        if runner is None:
            return None
        status = runner.stop()
        self._last_status = status
        self.runner = None
        ended = "faulted" if status.state is RunnerState.FAULTED else "stopped"
        lost = runner.writer.unwritten
        message = status.message if ended == "faulted" else f"Run {status.run_id} stopped after {status.parts} parts ({status.recorded} recorded)."
        if lost:
            message += f" {lost} results could not be written."
        try:
            self.store.end_run(runner.run_id, ended, message, dropped_frames=status.dropped, failed_grabs=status.failed_grabs)
        except Exception as exc:  # the record is what failed (a full disk): the status still says how the run ended
            log.error("cannot record the end of run %s: %s", runner.run_id, exc)
        return status


def open_line(*, camera_spec: str, model: Path | None = None, db: Path | None = None, recipe: Path | None = None,
              config: Path | None = None, device: str = "auto", mode: str | None = None, max_batch: int | None = None) -> Line:
    """Recipe, model, cameras and store for a line, opened in an order that leaves nothing behind
    when one fails: the database is created only once the cameras and the model are ready. `mode`
    and `max_batch` override the config's runner.mode and runner.max_batch."""
    cameras = open_cameras(camera_spec)  # a malformed spec fails before anything is loaded
    cfg = runner_options(load_config(config), mode, max_batch)
    rcp = load_recipe(recipe)
    check_station(len(cameras), rcp)
    from inspection.model_registry import model_for

    inspector = load_package(model or model_for(rcp, db or default_db()), device=device)
    thresholds_in_force(rcp, inspector.info)  # a recipe that does not fit the model fails before anything is opened
    inspector.warmup()
    try:
        for cam in cameras:
            cam.open()
            apply_recipe(cam, rcp)  # a setting a camera refuses fails here, before the database exists
        store = open_store(db or default_db())
    except BaseException:
        for cam in cameras:
            cam.close()
        raise
    try:
        return Line(store=store, config=cfg, recipe=rcp, camera_spec=camera_spec, inspector=inspector, cameras=cameras)
    except BaseException:
        for cam in cameras:
            cam.close()
        store.close()
        raise
