"""The station's main window. The Line tab is the operator's: live view with the defect overlay,
verdict, shift counters, NG-rate trend, filmstrip of rejects, line control (start / pause / stop,
recipe, camera), camera light, alarms with acknowledge, and the event log. The Review and Models
tabs are the engineer's (app.gui.review_view, app.gui.models_view): relabel parts, train, compare,
promote, roll back; the Users tab the administrator's. Above the tabs the login bar (app.gui.session): what the
logged-in role may not do is greyed out, and the core refuses it anyway.

Everything slow runs in the controller's threads; this window only shows what they hand over.
The live view is pulled on a timer (up to 30 Hz) and shows the newest part only: older ones that
arrived between two ticks are skipped, never queued. The camera light, Pause and the alarm banner
follow the line's events (a run's state, an alarm raised or acknowledged), queued to the GUI thread
by the controller; the counters come once a second from the controller's statistics thread.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, QObject, QSettings, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QMainWindow,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.gui.controller import LineChoices, LineController, PartView, StationSnapshot, fallback_cameras
from app.gui.garbage import GarbageTimer, settle_garbage
from app.gui.models_view import ModelsView
from app.gui.part_dialog import PartDialog
from app.gui.pickers import camera_label
from app.gui.review_controller import ReviewController
from app.gui.review_view import ReviewView
from app.gui.session import LoginBar, SessionController, UsersView
from app.gui.widgets import (
    AlarmBanner,
    CountersPanel,
    EventLog,
    Filmstrip,
    ImageView,
    SignalsPanel,
    StatusLight,
    TrendStrip,
    VerdictPanel,
    labelled,
)
from inspection.access.users import Permission, User
from inspection.runtime.events import AlarmChanged, RunStateChanged
from inspection.runtime.overlay import MODES, render
from inspection.runtime.status import RunnerState

REFRESH_HZ = 30
ACTIVITY = (
    QEvent.Type.KeyPress,
    QEvent.Type.MouseButtonPress,
    QEvent.Type.Wheel,
)  # what counts as someone at the station


class MainWindow(QMainWindow):
    def __init__(self, controller: LineController, settings: QSettings | None = None) -> None:
        super().__init__()
        self.controller = controller
        self.settings = settings
        self.setWindowTitle(f"Lepton Inspect - {controller.camera_spec}")
        self.resize(1500, 860)
        self.choices: LineChoices | None = None
        self.overlay_mode = str(settings.value("overlay", "contours")) if settings is not None else "contours"
        if self.overlay_mode not in MODES:
            self.overlay_mode = "contours"
        self._busy = ""
        self._run_state = ("idle", "")  # (state, message) of the open line's run, as its events last said
        self._shown_part: str | None = None
        self.display_lags_ms: collections.deque[float] = collections.deque(maxlen=100_000)  # verdict published -> shown
        self.part_dialog: PartDialog | None = None
        self.snapshot: StationSnapshot | None = None  # the last one shown
        self.closing = False  # the close was asked for: the line is being stopped and closed
        self.closed = False  # ... and it is: the window may go
        self._checked_alone = False  # the accounts were read without an open line (see _on_failed)
        self._build_line_widgets()
        self.splitter = self._lay_out_line_tab()
        self._build_tabs()
        self.statusBar().showMessage("Starting up")
        self._restore_layout()
        self._connect_controls()
        self._connect_controller()
        self._start_timers()
        self._on_user(None)  # nobody is logged in at start
        QApplication.instance().installEventFilter(self)  # keys and clicks anywhere keep a login alive

    # -- building the window ---------------------------------------------------------------
    def _build_line_widgets(self) -> None:
        """The Line tab's widgets: the live view and what sits around it, the panels, the controls."""
        self.banner = AlarmBanner()
        self.view = ImageView()
        self.overlay_button = QPushButton()
        self.overlay_button.setObjectName("overlayButton")
        self._label_overlay_button()
        self.filmstrip = Filmstrip()
        self.verdict = VerdictPanel()
        self.counters = CountersPanel()
        self.signals = SignalsPanel()
        self.trend = TrendStrip()
        self.start_button = QPushButton("Start")
        self.pause_button = QPushButton("Pause")
        self.stop_button = QPushButton("Stop")
        for b in (self.start_button, self.pause_button, self.stop_button):
            b.setEnabled(False)
        self.recipe_box = QComboBox()
        self.recipe_box.setObjectName("recipeBox")
        self.camera_box = QComboBox()
        self.camera_box.setObjectName("cameraBox")
        self.light = StatusLight()
        self.report_button = QPushButton("Shift report...")
        self.report_button.setObjectName("reportButton")
        self.report_button.setToolTip("QA: the current shift's quality report (PDF, with CSV and JSON beside it)")
        self.report_button.setEnabled(False)
        self.events = EventLog()

    def _lay_out_line_tab(self) -> QSplitter:
        """The Line tab: the live view, its light and the filmstrip on the left; panels and controls on the right."""
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(self.view, 1)
        row = QHBoxLayout()
        row.addWidget(self.light)
        row.addStretch(1)
        row.addWidget(self.report_button)
        row.addWidget(self.overlay_button)
        lv.addLayout(row)
        lv.addWidget(labelled("Latest rejects (click to open)", self.filmstrip))
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        for panel in (self.verdict, self.counters, self.signals, self.trend):
            rv.addWidget(panel)
        rv.addLayout(self._lay_out_run_buttons())
        self.choice_controls = QWidget()
        cv = QVBoxLayout(self.choice_controls)
        cv.setContentsMargins(0, 0, 0, 0)
        cv.addWidget(labelled("Recipe", self.recipe_box))
        cv.addWidget(labelled("Camera", self.camera_box))
        rv.addWidget(self.choice_controls)
        rv.addWidget(labelled("Event log", self.events), 1)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        return splitter

    def _lay_out_run_buttons(self) -> QHBoxLayout:
        """Start and Pause (they need a login with the right to run the line), and Stop (it never does)."""
        self.run_controls = QWidget()
        buttons = QHBoxLayout(self.run_controls)
        buttons.setContentsMargins(0, 0, 0, 0)
        for b in (self.start_button, self.pause_button):
            buttons.addWidget(b)
        row = QHBoxLayout()
        row.addWidget(self.run_controls, 2)
        row.addWidget(self.stop_button, 1)
        return row

    def _build_tabs(self) -> None:
        """The login bar above the tabs: Line (the operator's), Review and Models (the engineer's), Users."""
        self.session = SessionController(self.controller, self)
        self.login_bar = LoginBar(self.session)
        self.review_controller = ReviewController(self.controller, self)
        self.review = ReviewView(self.review_controller, self.session)
        self.models = ModelsView(self.review_controller, self.session)
        self.users = UsersView(self.session)
        if self.settings is not None:
            self.review.restore_state(self.settings)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("tabs")
        self.tabs.addTab(self.splitter, "Line")
        self.tabs.addTab(self.review, "Review")
        self.tabs.addTab(self.models, "Models")
        self.tabs.addTab(self.users, "Users")
        central = QWidget()
        outer = QVBoxLayout(central)
        outer.addWidget(self.banner)
        outer.addWidget(self.login_bar)
        outer.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

    def _connect_controls(self) -> None:
        """The buttons, pickers and keys of the window, and the signals of its tabs."""
        self.overlay_button.clicked.connect(self.toggle_overlay)
        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.pause)
        self.stop_button.clicked.connect(self.stop)
        self.recipe_box.activated.connect(self._switch)
        self.camera_box.activated.connect(self._switch)
        self.banner.acknowledge.connect(self.acknowledge)
        self.filmstrip.part_clicked.connect(self.controller.load_part)
        self.report_button.clicked.connect(self.export_report)
        # The operator's keys act while the Line tab shows: Space in the review must not start the line.
        QShortcut(QKeySequence(Qt.Key.Key_Space), self, activated=lambda: self._on_line_tab() and self.toggle())
        QShortcut(QKeySequence(Qt.Key.Key_P), self, activated=lambda: self._on_line_tab() and self.pause())
        QShortcut(QKeySequence(Qt.Key.Key_H), self, activated=lambda: self._on_line_tab() and self.toggle_overlay())
        QShortcut(QKeySequence(Qt.Key.Key_F11), self, activated=self.toggle_full_screen)
        self.tabs.currentChanged.connect(self._on_tab)
        self.review_controller.failed.connect(self._show_message)
        self.session.user_changed.connect(self._on_user)
        self.session.failed.connect(self._show_message)
        self.review_controller.busy.connect(self._on_review_busy)
        self.review_controller.model_changed.connect(self._on_model_changed)

    def _connect_controller(self) -> None:
        """The controller's signals, from its threads and the line's events, to bound methods of this
        window (a lambda would run on the emitting thread); the line's events always queued."""
        c = self.controller
        c.report_written.connect(self._on_report_written)
        c.ready.connect(self._on_ready)
        c.failed.connect(self._on_failed)
        c.started.connect(self._on_started)
        c.stopped.connect(self._on_stopped)
        c.busy.connect(self._on_busy)
        c.stats.connect(self.show_stats)
        c.part_loaded.connect(self._on_part_loaded)
        c.run_state.connect(self._on_run_state, Qt.ConnectionType.QueuedConnection)
        c.alarm_changed.connect(self._on_alarm_changed, Qt.ConnectionType.QueuedConnection)

    def _start_timers(self) -> None:
        """The pull timer (the newest part, up to 30 Hz) and the garbage collector's (app.gui.garbage)."""
        self.timer = QTimer(self)
        self.timer.setInterval(int(1000 / REFRESH_HZ))
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
        self.garbage = GarbageTimer(self)
        self.garbage.start()

    # -- actions -------------------------------------------------------------------------
    def _user(self, permission: Permission) -> User | None:
        """The logged-in user if their role may do it (the core checks again), else None and why."""
        user = self.session.user
        if user is None or not self.session.may(permission):
            self.statusBar().showMessage(
                f"Log in as someone who may {permission.value}."
                if user is None
                else f"{user.name} ({user.role.value}) may not {permission.value}."
            )
            return None
        return user

    def start(self) -> None:
        if (user := self._user(Permission.RUN_LINE)) is None:
            return
        self.banner.show_message("")
        self.start_button.setEnabled(False)
        self.controller.start(user)

    def stop(self) -> None:
        self.stop_button.setEnabled(False)
        self.pause_button.setEnabled(False)
        self.controller.stop()

    def pause(self) -> None:
        if self.pause_button.isEnabled():
            self.controller.pause()

    def toggle(self) -> None:
        if self.controller.running:
            self.stop()
        elif self.start_button.isEnabled():
            self.start()

    def acknowledge(self, event_ids: tuple[int, ...]) -> None:
        if event_ids and self._user(Permission.ACK_ALARMS) is None:  # (a plain message is dismissed by anyone)
            return
        self.controller.acknowledge(event_ids)
        self.banner.show_alarms(self.controller.active_alarms())

    def export_report(self) -> None:
        """QA: pick where the current shift's report goes; it is written in the background."""
        if (user := self._user(Permission.EXPORT_REPORT)) is None:
            return
        folder = str(self.settings.value("report_folder", "")) if self.settings is not None else ""
        suggested = str(Path(folder or Path.home()) / f"{self.controller.report_stem()}.pdf")
        path, _ = QFileDialog.getSaveFileName(self, "Save the shift report", suggested, "PDF (*.pdf)")
        if path:
            if self.settings is not None:
                self.settings.setValue("report_folder", str(Path(path).parent))
            self.controller.export_report(Path(path).with_suffix(".pdf"), user)

    def toggle_overlay(self) -> None:
        self.overlay_mode = MODES[(MODES.index(self.overlay_mode) + 1) % len(MODES)]
        self._label_overlay_button()
        self._shown_part = None  # redraw the current part in the new mode
        if self.settings is not None:
            self.settings.setValue("overlay", self.overlay_mode)

    def toggle_full_screen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def _label_overlay_button(self) -> None:
        self.overlay_button.setText("Overlay: heatmap" if self.overlay_mode == "heatmap" else "Overlay: contours")

    def _switch(self) -> None:
        """A recipe or camera picked: reopen the line on them (the controller refuses while running)."""
        spec = self.camera_box.currentData()
        recipe = self.recipe_box.currentData()
        current = self.choices
        if (
            current is not None
            and self.controller.line is not None
            and spec == current.camera_spec
            and recipe == current.recipe_path
        ):
            return  # already open on these (after a failed switch nothing is open: then open them again)
        user = self.session.user
        if self.controller.line is not None and (user := self._user(Permission.RUN_LINE)) is None:
            return
        if not self.controller.running:  # (while it runs a recipe is a changeover: the run goes on)
            for b in (self.start_button, self.pause_button, self.stop_button):
                b.setEnabled(False)
        self.controller.reopen(spec, recipe, user)

    def _on_report_written(self, path: str) -> None:
        self.statusBar().showMessage(f"Shift report written: {path}")

    def _show_message(self, message: str) -> None:
        self.statusBar().showMessage(message)

    def _on_review_busy(self, what: str) -> None:
        if what:
            self.statusBar().showMessage(what + " ...")
        elif self.statusBar().currentMessage().endswith(" ..."):
            self.statusBar().clearMessage()

    def _on_line_tab(self) -> bool:
        return self.tabs.currentWidget() is self.splitter

    def _on_tab(self, index: int) -> None:
        page = self.tabs.widget(index)
        if page in (self.review, self.models, self.users) and self.controller.line is not None:
            page.activate()

    def _on_model_changed(self, message: str) -> None:
        """A promotion or rollback is recorded: reopen the line so that the next run uses it."""
        self.statusBar().showMessage(message + " Reloading the line ...")
        for b in (self.start_button, self.pause_button, self.stop_button):
            b.setEnabled(False)
        self.controller.reopen(self.controller.camera_spec, self.controller.recipe)

    # -- controller signals (GUI thread) -------------------------------------------------
    def _on_ready(self, choices: LineChoices) -> None:
        settle_garbage()
        self.choices = choices
        self.review.set_classes(choices.model_classes)
        if self.tabs.currentWidget() in (self.review, self.models):
            self.tabs.currentWidget().activate()
        self.setWindowTitle(f"Lepton Inspect - {choices.recipe_name} on {choices.camera_spec}")
        self._fill_boxes(choices.recipes, choices.recipe_path, choices.cameras, choices.camera_spec)
        running = self.controller.running
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.pause_button.setEnabled(running)
        self._sync_run_state()
        self.banner.show_alarms(self.controller.active_alarms())
        self._gate_choices()
        self.report_button.setEnabled(self.session.may(Permission.EXPORT_REPORT))
        line = self.controller.line
        if line is not None:
            self.session.set_idle_minutes(line.config.auto_logout_min)
        self.session.check()
        self.statusBar().showMessage(
            f"Changeover done: recipe {choices.recipe_name} is in force."
            if running
            else "Ready - press Start (or Space)"
            if self.session.user
            else "Ready - log in to start the line"
        )
        if self.settings is not None:
            self.settings.setValue("camera", choices.camera_spec)
            self.settings.setValue("recipe", str(choices.recipe_path) if choices.recipe_path else "")

    def _fill_boxes(
        self,
        recipes: tuple[tuple[str, Path | None], ...],
        recipe_path: Path | None,
        cameras: tuple[str, ...],
        camera_spec: str,
    ) -> None:
        self.recipe_box.clear()
        for name, path in recipes:
            self.recipe_box.addItem(name, path)
        self.recipe_box.setCurrentIndex(max(0, next((i for i, (_, p) in enumerate(recipes) if p == recipe_path), 0)))
        self.camera_box.clear()
        for spec in cameras:
            self.camera_box.addItem(camera_label(spec), spec)
        self.camera_box.setCurrentIndex(max(0, list(cameras).index(camera_spec) if camera_spec in cameras else 0))

    def _on_user(self, user: User | None) -> None:
        """Someone logged in or out (GUI thread): show it and grey out what the role may not do."""
        self.session.on_user_changed(user)
        self.login_bar.show_user(user)
        may = self.session.may
        self.run_controls.setEnabled(may(Permission.RUN_LINE))
        self._gate_choices()
        self.report_button.setEnabled(self.controller.line is not None and may(Permission.EXPORT_REPORT))
        for page, on in (
            (self.review, may(Permission.RELABEL)),
            (self.models, may(Permission.TRAIN) or may(Permission.PROMOTE)),
            (self.users, may(Permission.MANAGE_USERS)),
        ):
            self.tabs.setTabEnabled(self.tabs.indexOf(page), on)
            if not on and self.tabs.currentWidget() is page:
                self.tabs.setCurrentWidget(self.splitter)
        if user is not None:
            self.statusBar().showMessage(f"Logged in as {user.name} ({user.role.value}).")

    def _gate_choices(self) -> None:
        """Recipe and camera need the right to run the line - except while no line is open (a bad
        model, a missing camera): nobody can log in without the database, and the station must be
        brought up. Start needs a login either way; the next run's start records the recipe."""
        self.choice_controls.setEnabled(self.session.may(Permission.RUN_LINE) or self.controller.line is None)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in ACTIVITY:
            self.session.touch()
        return False

    def _on_failed(self, message: str) -> None:
        self.banner.show_message(message)
        if self.controller.line is None and self.session.user is None and not self._checked_alone:
            self._checked_alone = True  # (once: a database that cannot open would fail the check again)
            self.session.check()  # nothing open: the login (or the first administrator) works on the database alone
        if self.controller.line is None and self.choices is None:
            # Nothing opened: still let the operator pick another camera or the default recipe.
            self._fill_boxes(
                (("default recipe", None),),
                None,
                fallback_cameras(self.controller.camera_spec),
                self.controller.camera_spec,
            )
        self.start_button.setEnabled(self.controller.line is not None and not self.controller.running)
        self.stop_button.setEnabled(self.controller.running)
        self.banner.show_alarms(self.controller.active_alarms())
        self._sync_run_state()
        self._gate_choices()

    def _on_started(self, run_id: int) -> None:
        self.stop_button.setEnabled(True)
        self.pause_button.setEnabled(True)
        self._sync_run_state()
        self.statusBar().showMessage(f"Running (run {run_id})")

    def _on_stopped(self, message: str) -> None:
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.pause_button.setEnabled(False)
        self._sync_run_state()
        self.statusBar().showMessage(message)

    def _on_busy(self, what: str) -> None:
        self._busy = what
        if what:
            self.statusBar().showMessage(what + " ...")
            self.setCursor(Qt.CursorShape.BusyCursor)
        else:
            self.unsetCursor()
        self._show_light()

    def _on_part_loaded(self, part: PartView) -> None:
        if self.part_dialog is None:
            self.part_dialog = PartDialog(self)
        self.part_dialog.show_part(part, self.snapshot.shift_start.tzinfo if self.snapshot else None)

    def show_stats(self, snap: StationSnapshot) -> None:
        """The once-a-second snapshot from the record: counters, trend, rejects, events, alarms."""
        self.snapshot = snap
        self.counters.show_counters(
            "shift", snap.shift, f"Shift {snap.shift_name} {snap.shift_start:%H:%M}-{snap.shift_end:%H:%M}"
        )
        self.counters.show_counters("start", snap.since_start)
        line = self.controller.line
        limit = line.config.alarms.ng_rate_limit if line is not None else 0.0
        self.trend.show_trend(snap.trend, limit)
        tz = snap.shift_start.tzinfo
        self.filmstrip.show_rejects(snap.rejects, tz)
        self.events.show_events(snap.events, tz)

    # -- the pull timer ------------------------------------------------------------------
    def refresh(self) -> None:
        """Show the latest result (only if new) and the line's signals (values in memory); never waits."""
        wiring = self.controller.line_signals()
        if wiring is not None:
            self.signals.show_signals(*wiring)
        entry = self.controller.latest_entry()
        if entry is not None and entry[0].part_id != self._shown_part:
            result, published = entry
            self._shown_part = result.part_id
            ng_at = self.choices.ng_at if self.choices is not None else float("nan")
            self.view.set_image(
                render(result.image, result.defect_mask, result.anomaly_map, result.verdict, self.overlay_mode, ng_at)
            )
            self.verdict.show_result(result)
            self.display_lags_ms.append((time.perf_counter() - published) * 1000)

    # -- the line's events (GUI thread, queued) ------------------------------------------
    def _on_run_state(self, event: RunStateChanged) -> None:
        """The open line's run changed state: the light and Pause follow; a fault is shown and wound up."""
        self._run_state = (event.state, event.message)
        if event.state == RunnerState.FAULTED.value and (fault := self.controller.check_fault()):
            self.banner.show_message(fault)
        self._show_light()

    def _on_alarm_changed(self, _event: AlarmChanged) -> None:
        """An alarm was raised or acknowledged: the banner shows the ones active now (in memory)."""
        self.banner.show_alarms(self.controller.active_alarms())

    def _sync_run_state(self) -> None:
        """The run's state as the controller has it now (a run started or stopped, a line opened); the
        line's events carry it on from here."""
        status = self.controller.status()
        self._run_state = (status.state.value, status.message) if status is not None else ("idle", "")
        self._show_light()

    def _show_light(self) -> None:
        state, message = self._run_state
        self.pause_button.setText("Resume" if state == RunnerState.PAUSED.value else "Pause")
        if self._busy:
            self.light.set_state("busy", self._busy)
        elif state == RunnerState.FAULTED.value:
            self.light.set_state("fault", message)
        elif self.controller.line is None:
            self.light.set_state("off", "No camera open")
        elif state == RunnerState.RUNNING.value:
            self.light.set_state("live", "Grabbing and inspecting")
        elif state == RunnerState.PAUSED.value:
            self.light.set_state("paused", "Paused: not grabbing")
        else:
            self.light.set_state("ready", f"{self.controller.camera_spec} open, not grabbing")

    # -- layout that survives a restart --------------------------------------------------
    def _restore_layout(self) -> None:
        if self.settings is None:
            return
        geometry = self.settings.value("geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        splitter = self.settings.value("splitter")
        if isinstance(splitter, QByteArray):
            self.splitter.restoreState(splitter)

    def save_layout(self) -> None:
        if self.settings is not None:
            self.settings.setValue("geometry", self.saveGeometry())
            self.settings.setValue("splitter", self.splitter.saveState())
            self.review.save_state(self.settings)
            self.settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        """The line is stopped and closed in the background (every part committed); the window stays
        live meanwhile and goes when that is done."""
        if self.closed:
            super().closeEvent(event)
            return
        event.ignore()
        if self.closing:
            return
        self.closing = True
        self.save_layout()
        for w in (self.start_button, self.pause_button, self.stop_button, self.recipe_box, self.camera_box):
            w.setEnabled(False)
        self.statusBar().showMessage("Stopping the line and saving ...")
        self.review_controller.close()
        if self.session.user is not None:
            self.session.logout("window closed")  # (queued before the line closes)
        self.controller.closed.connect(self._finish_close)
        self.controller.close_line()

    def _finish_close(self) -> None:
        self.closed = True
        QApplication.instance().removeEventFilter(self)
        self.session.idle_timer.stop()
        self.timer.stop()
        self.garbage.stop()
        self.close()
