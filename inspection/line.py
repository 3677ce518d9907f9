"""A line: one station spec (one camera, or several joined by `+`), one model, one recipe and one
store, and the runs between them.

`Line` is what the command line and the GUI drive; it builds a `Runner` per start and records
each run's start and end in the store. A changeover (`change_recipe`, from the GUI or a PLC's
RecipeIndex) loads the new recipe's model first, then stops the run between parts, applies the
recipe and starts a new run: the program never restarts, and a run has one recipe version.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from importlib import metadata
from pathlib import Path

from camera.base import Camera, TriggerMode
from camera.spec import open_cameras
from inspection.access import audit
from inspection.access.runs import start_run
from inspection.access.users import Permission, User, require
from inspection.engineering.model_registry import active, model_for
from inspection.errors import ConfigError
from inspection.plant.link import PlcLink, start_plc
from inspection.record.opening import open_station_record
from inspection.record.recipe_versions import recipe_version
from inspection.record.retention import Retention
from inspection.record.runs import RunSpec
from inspection.record.server import is_url
from inspection.record.store import Store
from inspection.record.writer import ResultWriter
from inspection.reports.shifts import ShiftReporter
from inspection.result import InspectionResult
from inspection.runtime.alarms import AlarmMonitor
from inspection.runtime.events import EventHub, SetupChanged
from inspection.runtime.reject_gate import RejectGate, RejectStats
from inspection.runtime.runner import ResultListener, Runner
from inspection.runtime.station import TriggerGate, apply_recipe, check_station
from inspection.runtime.status import RunnerState, RunnerStatus
from inspection.runtime.verdict import thresholds_in_force
from inspection.settings.config import Config, data_dir, default_db, load_config, runner_options
from inspection.settings.io import RejectConfig, io_settings
from inspection.settings.recipe import Recipe, load_recipe
from inspection.settings.recipe_folder import recipe_for_index, recipes_folder
from models.base import Inspector, Thresholds
from models.package import load_package

log = logging.getLogger(__name__)

LOADED_MODELS = 4  # model packages kept loaded for changeovers back and forth
PLC = "plc"  # who a PLC's changeover is by, in the audit trail


def software_version() -> str:
    try:
        return metadata.version("lepton-inspect")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0+unknown"


@dataclasses.dataclass(frozen=True)
class Setup:
    """What a line runs: a recipe (and its file: None for the packaged default), its version, the
    model, the thresholds in force and the model's id in the record."""

    recipe: Recipe
    recipe_path: Path | None
    inspector: Inspector
    thresholds: Thresholds
    model_version_id: int
    recipe_version: int


class Line:
    def __init__(
        self,
        *,
        store: Store,
        config: Config,
        recipe: Recipe,
        camera_spec: str,
        inspector: Inspector,
        cameras: list[Camera] | None = None,
        external_trigger: bool = False,
        device: str = "auto",
        recipe_path: Path | None = None,
    ) -> None:
        self.store = store
        self.events = EventHub()  # the line's state changes, pushed: runs, changeovers, alarms
        self.base_config = config  # the station's; `config` is it with the recipe's shifts and retention
        self.config = recipe.in_force(config)
        self.camera_spec = camera_spec
        self.cameras = cameras if cameras is not None else open_cameras(camera_spec)
        # What the line runs, replaced whole by a changeover (one assignment: a reader on another
        # thread never sees the new recipe with the old model).
        self.setup = Setup(
            recipe,
            recipe_path,
            inspector,
            thresholds_in_force(recipe, inspector.info),
            store.model_version(inspector.info),
            recipe_version(store, recipe),
        )
        # A software-triggered recipe fires on the gate's requests (a PLC's Trigger), not as fast as it can.
        self.trigger_gate = TriggerGate() if external_trigger else None
        self._lot = ""
        self.device = device  # where a changeover's model runs
        self._models: dict[tuple[str, int, int], Inspector] = {}
        self.plc: PlcLink | None = None  # the PLC handshake ([plc]; started by open_line)
        self.runner: Runner | None = None
        self._last_status: RunnerStatus | None = None
        self.reject_gate: RejectGate | None = None  # the current run's, when [reject] is enabled
        self._init_control()
        self._start_services(config)

    def _init_control(self) -> None:
        """What start, stop, a changeover and close coordinate through, and what they count."""
        self._change_lock = threading.Lock()  # one changeover at a time (its model loads outside _control)
        # Start, stop, close and a changeover's stop-and-start take turns: a Stop pressed during a PLC
        # changeover waits for it and then stops the new run, never the other way round.
        self._control = threading.RLock()
        self._closed = False
        self._changing = False
        self._stop_requested = threading.Event()  # request_stop() since the last start(): a changeover does not restart
        self._max_parts: int | None = None  # start()'s, across the runs of its changeovers
        self._carried = 0  # parts of the runs a changeover ended since start()
        self.run_statuses: list[RunnerStatus] = []  # how each run since start() ended (a changeover ends one)
        # The reject gate's counts of each of those runs (the last: read by the alarm check after a stop).
        self.reject_runs: list[RejectStats] = []
        self.failure = ""  # why the line stopped when a changeover could not start it again ("" if it did not)

    def _start_services(self, config: Config) -> None:
        """The line's own threads: the alarm monitor, image retention and (if configured) shift reports."""
        self.alarms = AlarmMonitor(self.store, self.config.alarms, self.status, on_change=self.events.publish)
        self._result_listeners: list[ResultListener] = [self.alarms.on_result, self._on_result_for_gate]
        self.alarms.watch_reject(self.reject_stats)
        self.alarms.start()
        self.retention = Retention(self.store, self.config.retention)
        self.retention.start()
        self.reports: ShiftReporter | None = None
        if config.reports_automatic:
            self.reports = ShiftReporter(self.store, self.config, config.reports_folder or data_dir() / "reports")
            self.reports.start()

    @property
    def recipe(self) -> Recipe:
        return self.setup.recipe

    @property
    def recipe_path(self) -> Path | None:
        return self.setup.recipe_path

    @property
    def inspector(self) -> Inspector:
        return self.setup.inspector

    @property
    def thresholds(self) -> Thresholds:
        return self.setup.thresholds

    @property
    def model_version_id(self) -> int:
        return self.setup.model_version_id

    @property
    def recipe_version(self) -> int:
        return self.setup.recipe_version

    @property
    def changing(self) -> bool:
        """A changeover is stopping the run or starting the next."""
        return self._changing

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
        """Open the camera if needed and start a run; CameraError if the camera cannot start.
        `max_parts` counts across the runs that changeovers start."""
        with self._control:
            self._stop_requested.clear()
            self._max_parts, self._carried, self.run_statuses, self.reject_runs = max_parts, 0, [], []
            self.failure = ""
            return self._start_run(max_parts)

    def request_stop(self) -> None:
        """Ask the run to stop after the current part (any thread, a signal handler); a changeover
        under way then starts no new run. `stop()` finishes the job."""
        self._stop_requested.set()
        runner = self.runner
        if runner is not None:
            runner.request_stop()

    def wait(self, timeout_s: float) -> bool:
        """True once the line's run has ended for good (its parts inspected, a fault, a stop asked
        for) - not when a changeover ended it to start the next; False after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._control:
                runner, changing = self.runner, self._changing
            if runner is None and not changing:
                return True
            left = deadline - time.monotonic()
            if runner is not None and runner.wait(max(0.0, min(left, 0.2))):
                with self._control:  # (a changeover holds it until its new run has started)
                    if self.runner is runner:
                        return True
            elif runner is None:
                time.sleep(min(max(left, 0.0), 0.05))
            if time.monotonic() >= deadline:
                return False

    def _start_run(self, max_parts: int | None) -> Runner:
        if self._closed:
            raise RuntimeError("the line is closed")
        if self.runner is not None and self.runner.status().active:  # (also while its camera is being reconnected)
            raise RuntimeError("the line is already running")
        check_station(len(self.cameras), self.recipe)
        for cam in self.cameras:
            if not cam.is_open:
                cam.open()
        self._wire(self.recipe)
        runner = self._new_runner(max_parts)
        writer, run_id = runner.writer, runner.run_id
        runner.lot_id = self._lot
        try:
            if self.config.reject.enabled:
                self.reject_gate = RejectGate(self.cameras[0], self.config.reject)
                self.reject_gate.start()  # (CameraError when the camera has no such output or encoder)
            runner.start()
        except Exception as exc:
            self._close_gate()
            writer.close()
            for cam in self.cameras:
                cam.close()
            self.store.end_run(run_id, "failed", f"Run {run_id} could not start: {exc}")
            raise
        self.runner = runner
        if self._stop_requested.is_set():  # (asked for while it started)
            runner.request_stop()
        return runner

    def _new_runner(self, max_parts: int | None) -> Runner:
        """A run recorded (its row, its changes audited by the station) and its runner, not started."""
        run_id = start_run(
            self.store,
            RunSpec(
                line=self.config.line,
                station=self.config.station,
                camera_spec=self.camera_spec,
                recipe=self.recipe.name,
                model_version_id=self.model_version_id,
                software_version=software_version(),
                ok_below=self.thresholds.ok_below,
                ng_at=self.thresholds.ng_at,
                recipe_version=self.recipe_version,
            ),
        )
        writer = ResultWriter(
            self.store,
            self.config,
            self.recipe,
            self.model_version_id,
            on_error=lambda exc: log.error("record write failed: %s", exc),
        )
        return Runner(
            self.cameras,
            self.inspector,
            self.recipe,
            writer,
            self.config,
            run_id=run_id,
            max_parts=max_parts,
            result_listeners=self._result_listeners,
            trigger_gate=self.trigger_gate,
            recipe_version=self.recipe_version,
            on_state=self.events.publish,
        )

    def _wire(self, recipe: Recipe) -> None:
        """The station's trigger input ([io]) on every camera of a hardware-triggered recipe, and the
        reject output ([reject]) on the first camera; kept by the cameras across reconnections."""
        io, reject = self.base_config.io, self.base_config.reject
        for k, cam in enumerate(self.cameras):
            if recipe.camera.trigger is TriggerMode.HARDWARE or (k == 0 and reject.enabled):
                cam.configure_io(io_settings(io, reject if k == 0 else RejectConfig()))

    def _on_result_for_gate(self, result: InspectionResult) -> None:
        gate = self.reject_gate
        if gate is not None:
            gate.on_result(result)

    def reject_stats(self) -> RejectStats | None:
        """The reject gate's counts: the current run's, else the last run's (None: no reject output yet)."""
        gate = self.reject_gate
        return gate.stats() if gate is not None else (self.reject_runs[-1] if self.reject_runs else None)

    def _close_gate(self, finish: bool = False) -> None:
        gate = self.reject_gate
        if gate is not None:
            gate.close(finish)
            self.reject_runs.append(gate.stats())
            self.reject_gate = None

    def set_lot(self, lot_id: str) -> None:
        """Parts inspected from now on belong to lot `lot_id` ("": none); kept in their rows."""
        self._lot = lot_id.strip()[:100]
        runner = self.runner
        if runner is not None:
            runner.lot_id = self._lot

    @property
    def lot_id(self) -> str:
        return self._lot

    def change_recipe_index(self, index: int) -> None:
        """A PLC's RecipeIndex: `change_recipe` to the recipe whose `index` is `index`, by the PLC
        (`PLC` in the audit trail); ConfigError when none has it."""
        self.change_recipe(recipe_for_index(recipes_folder(self.base_config), index), by=PLC)

    def change_recipe(self, path: Path | None, *, by: User | str) -> None:
        """A changeover to the recipe at `path` (None: the packaged default), between parts, without
        restarting the program: its model is loaded (and warmed up) while the line still runs, then the
        run in progress stops after its parts in flight, the recipe's camera settings are applied and,
        if a run was in progress, a new run starts. ConfigError, ModelError or CameraError (one
        sentence) when the recipe, its model or a camera setting is refused; before the stop the line
        runs on as it was. `by`: the user who asked for it (PermissionDenied unless they may run the
        line) or the machine that did (`PLC`); the changeover is in the audit trail under that name."""
        if isinstance(by, User):
            require(self.store, by, Permission.RUN_LINE)
        with self._change_lock:
            setup = self._new_setup(path)
            with self._control:
                if self._closed:
                    raise RuntimeError("the line is closed")
                running = self.runner is not None and self.runner.status().active and not self._stop_requested.is_set()
                self._changing = True
                try:
                    self._change_over(setup, by, running)
                finally:
                    self._changing = False
                    if self.setup is setup:  # (in force, its next run started or not: subscribers see it whole)
                        self.events.publish(
                            SetupChanged(setup.recipe.name, setup.recipe_version, setup.model_version_id)
                        )

    def _new_setup(self, path: Path | None) -> Setup:
        """The setup of the recipe at `path`: checked against the station, its model (the promoted one,
        else the recipe's) loaded and warmed up, its thresholds and versions - all before the line stops."""
        rcp = load_recipe(path)
        check_station(len(self.cameras), rcp)
        check_plc(rcp, self.plc is not None)
        promoted = active(self.store, rcp.name)
        inspector = self._model(promoted.path(rcp) if promoted is not None else rcp.model)
        thresholds = thresholds_in_force(rcp, inspector.info)
        return Setup(
            rcp, path, inspector, thresholds, self.store.model_version(inspector.info), recipe_version(self.store, rcp)
        )

    def _change_over(self, setup: Setup, by: User | str, running: bool) -> None:
        """(under `_control`) Stop the run, put `setup` in force (recorded, audited, published) and
        start the next run if one was going and no stop was asked for meanwhile."""
        status = self.stop()
        before, self.setup = self.setup, setup
        self.config = setup.recipe.in_force(self.base_config)
        self.retention.config = self.config.retention
        if self.reports is not None:
            self.reports.config = self.config
        self._record_switch(before, setup, by)
        if status is not None:
            self._carried += status.parts
        left = None if self._max_parts is None else self._max_parts - self._carried
        # (a stop asked for or a close during the stop, which waits for the parts in flight, wins)
        if not running or (left is not None and left <= 0) or self._stop_requested.is_set() or self._closed:
            return
        try:
            self._start_run(left)
        except Exception as exc:
            self.failure = (
                f"The line stopped: after the changeover to recipe {setup.recipe.name} it could not start again: {exc}"
            )
            self.store.log_event("recipe", self.failure, level="alarm")
            raise

    def _record_switch(self, before: Setup, after: Setup, by: User | str) -> None:
        """The changeover in the event log, and in the audit trail under the name of whoever asked for it."""
        self.store.log_event("recipe", f"Changeover to recipe {after.recipe.name} version {after.recipe_version}.")
        record_switch(
            self.store,
            by,
            camera=self.camera_spec,
            recipe=after.recipe_path,
            from_camera=self.camera_spec,
            from_recipe=before.recipe_path,
        )

    def _model(self, package: Path) -> Inspector:
        """The loaded model of `package` (loaded and warmed up on first use; the last few are kept)."""
        try:
            st = Path(package).stat()
            key = (str(Path(package).resolve()), st.st_mtime_ns, st.st_size)
        except OSError:
            key = (str(package), 0, 0)  # (load_package says what is wrong with it)
        if key not in self._models:
            inspector = load_package(package, device=self.device)
            inspector.warmup()
            if inspector.info.sha256 == self.inspector.info.sha256:
                inspector = self.inspector  # the model running now: keep the warm one
            while len(self._models) >= LOADED_MODELS:
                self._models.pop(next(iter(self._models)))
            self._models[key] = inspector
        return self._models[key]

    def close(self) -> None:
        """Stop the PLC link and any run, close the camera, the alarm monitor and the store."""
        self._stop_requested.set()  # (a changeover under way starts no new run)
        if self.plc is not None:
            self.plc.close()
            self.plc = None
        with self._control:
            self.stop()
            self._closed = True  # (a changeover still under way starts nothing)
        if self.reports is not None:
            self.reports.close()
        self.retention.close()
        self.alarms.close()
        for cam in self.cameras:
            cam.close()
        self.store.close()

    def stop(self) -> RunnerStatus | None:
        """Stop the current run (if any), commit everything, and record how it ended."""
        with self._control:
            return self._stop()

    def _stop(self) -> RunnerStatus | None:
        runner = self.runner
        if runner is None:
            return None
        gate = self.reject_gate
        status = runner.stop(close_cameras=gate is None)
        # The parts inspected last are still on their way to the gate: their pulses, then the cameras.
        if gate is not None:
            self._close_gate(finish=True)
            for cam in self.cameras:
                cam.close()
        self._last_status = status
        self.runner = None
        ended = "faulted" if status.state is RunnerState.FAULTED else "stopped"
        lost = runner.writer.unwritten
        message = (
            status.message
            if ended == "faulted"
            else f"Run {status.run_id} stopped after {status.parts} parts ({status.recorded} recorded)."
        )
        if lost:
            message += f" {lost} results could not be written."
        try:
            self.store.end_run(
                runner.run_id, ended, message, dropped_frames=status.dropped, failed_grabs=status.failed_grabs
            )
        except Exception as exc:  # the record is what failed (a full disk): the status still says how the run ended
            log.error("cannot record the end of run %s: %s", runner.run_id, exc)
        self.run_statuses.append(status)
        return status


def record_switch(
    store: Store,
    by: User | str,
    *,
    camera: str,
    recipe: Path | None,
    from_camera: str,
    from_recipe: Path | None,
) -> None:
    """A switch of the line's camera or recipe (a changeover, or the line reopened on another) in the
    audit trail, under the user's name (their permission to run the line checked against their
    current row first: PermissionDenied) or the machine's (`PLC`)."""
    who = by if isinstance(by, str) else require(store, by, Permission.RUN_LINE).name
    with audit.session(store) as s:
        audit.append(
            s,
            who=who,
            action="line_switched",
            target=camera,
            detail={
                "camera": camera,
                "recipe": str(recipe) if recipe else "default",
                "from_camera": from_camera,
                "from_recipe": str(from_recipe) if from_recipe else "default",
            },
        )


def check_plc(recipe: Recipe, plc: bool) -> None:
    """A PLC expects one result per part it knows of: a free-running camera is refused with the link on."""
    if plc and recipe.camera.trigger is TriggerMode.FREE_RUN:
        raise ConfigError(
            f"Recipe {recipe.name!r} lets the camera run free; with the PLC link on ([plc] enabled), a recipe needs a "
            "software or hardware trigger."
        )


def _warm_model(package: Path, recipe: Recipe, device: str) -> Inspector:
    """The model loaded and warmed up; a recipe that does not fit it fails here, before anything is opened."""
    inspector = load_package(package, device=device)
    thresholds_in_force(recipe, inspector.info)
    inspector.warmup()
    return inspector


def _open_cameras_then_record(cameras: list[Camera], recipe: Recipe, db: Path | None, buffer: Path | None) -> Store:
    """The cameras opened with the recipe's settings, then the station's record: a setting a camera
    refuses fails before the database exists, and leaves the cameras closed."""
    try:
        for cam in cameras:
            cam.open()
            apply_recipe(cam, recipe)
        return open_station_record(db, buffer)
    except BaseException:
        for cam in cameras:
            cam.close()
        raise


def open_line(
    *,
    camera_spec: str,
    model: Path | None = None,
    db: Path | None = None,
    recipe: Path | None = None,
    config: Path | None = None,
    device: str = "auto",
    mode: str | None = None,
    max_batch: int | None = None,
    external_trigger: bool = False,
    buffer: Path | None = None,
) -> Line:
    """Recipe, model, cameras and store for a line, opened in an order that leaves nothing behind
    when one fails: the database is created only once the cameras and the model are ready. `mode`
    and `max_batch` override the config's runner.mode and runner.max_batch. With [plc] enabled the
    PLC link is listening when this returns, and a software-triggered recipe fires on its Trigger
    (as on `external_trigger`). `db` may be a plant database server's URL: the station then records
    into `buffer` (default: the default file) and forwards its rows to the server."""
    if buffer is not None and (db is None or not is_url(db)):
        raise ConfigError(
            "A buffer file is for a station recording into a plant database server: give --db a postgresql:// URL too."
        )
    cameras = open_cameras(camera_spec)  # a malformed spec fails before anything is loaded
    cfg = runner_options(load_config(config), mode, max_batch)
    rcp = load_recipe(recipe)
    check_station(len(cameras), rcp)
    check_plc(rcp, cfg.plc.enabled)
    own_file = Path(buffer or default_db()) if db is not None and is_url(db) else (db or default_db())
    inspector = _warm_model(model or model_for(rcp, own_file), rcp, device)
    store = _open_cameras_then_record(cameras, rcp, db, buffer)
    try:
        line = Line(
            store=store,
            config=cfg,
            recipe=rcp,
            camera_spec=camera_spec,
            inspector=inspector,
            cameras=cameras,
            external_trigger=external_trigger or cfg.plc.enabled,
            device=device,
            recipe_path=recipe,
        )
    except BaseException:
        for cam in cameras:
            cam.close()
        store.close()
        raise
    try:
        line.plc = start_plc(line, cfg.plc)
    except BaseException:
        line.close()
        raise
    return line
