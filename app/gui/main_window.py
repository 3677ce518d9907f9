"""The station's main window. The Line tab is the operator's: live view with the defect overlay,
verdict, shift counters, NG-rate trend, filmstrip of rejects, line control (start / pause / stop,
recipe, camera), camera light, alarms with acknowledge, and the event log. The Review and Models
tabs are the engineer's (app.gui.review_view): relabel parts, train, compare, promote, roll back;
the Users tab the administrator's. Above the tabs the login bar (app.gui.session): what the
logged-in role may not do is greyed out, and the core refuses it anyway.

Everything slow runs in the controller's threads; this window only shows what they hand over.
The live view is pulled on a timer (up to 30 Hz) and shows the newest part only: older ones that
arrived between two ticks are skipped, never queued.
"""

from __future__ import annotations

import collections
import datetime as dt
import gc
import time
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.gui.controller import LineChoices, LineController, PartView, StationSnapshot, fallback_cameras
from app.gui.review_controller import ReviewController
from app.gui.review_view import ModelsView, ReviewView
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
from inspection.runtime.overlay import MODES, render
from inspection.runtime.runner import RunnerState

REFRESH_HZ = 30
GC_INTERVAL_MS = 1000
ACTIVITY = (
    QEvent.Type.KeyPress,
    QEvent.Type.MouseButtonPress,
    QEvent.Type.Wheel,
)  # what counts as someone at the station


class MainWindow(QMainWindow):
    def __init__(self, controller: LineController, settings=None) -> None:  # noqa: ANN001 (a QSettings or None)
        super().__init__()
        self.controller = controller
        self.settings = settings
        self.setWindowTitle(f"Lepton Inspect - {controller.camera_spec}")
        self.resize(1500, 860)
        self.choices: LineChoices | None = None
        self.overlay_mode = str(settings.value("overlay", "contours")) if settings is not None else "contours"
        if self.overlay_mode not in MODES:
            self.overlay_mode = "contours"

        # -- widgets ---------------------------------------------------------------------
        self.banner = AlarmBanner()
        self.view = ImageView()
        self.overlay_button = QPushButton()
        self.overlay_button.setObjectName("overlayButton")
        self.overlay_button.clicked.connect(self.toggle_overlay)
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

        # -- layout ----------------------------------------------------------------------
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
        rv.addWidget(self.verdict)
        rv.addWidget(self.counters)
        rv.addWidget(self.signals)
        rv.addWidget(self.trend)
        # Start, Pause and the choices need a login with the right to run the line; Stop never does.
        self.run_controls = QWidget()
        buttons = QHBoxLayout(self.run_controls)
        buttons.setContentsMargins(0, 0, 0, 0)
        for b in (self.start_button, self.pause_button):
            buttons.addWidget(b)
        row_buttons = QHBoxLayout()
        row_buttons.addWidget(self.run_controls, 2)
        row_buttons.addWidget(self.stop_button, 1)
        rv.addLayout(row_buttons)
        self.choice_controls = QWidget()
        cv = QVBoxLayout(self.choice_controls)
        cv.setContentsMargins(0, 0, 0, 0)
        cv.addWidget(labelled("Recipe", self.recipe_box))
        cv.addWidget(labelled("Camera", self.camera_box))
        rv.addWidget(self.choice_controls)
        rv.addWidget(labelled("Event log", self.events), 1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.session = SessionController(controller, self)
        self.login_bar = LoginBar(self.session)
        self.review_controller = ReviewController(controller, self)
        self.review = ReviewView(self.review_controller, self.session)
        self.models = ModelsView(self.review_controller, self.session)
        self.users = UsersView(self.session)
        if settings is not None:
            self.review.restore_state(settings)
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
        self.statusBar().showMessage("Starting up")
        self._restore_layout()

        # -- wiring ------------------------------------------------------------------------
        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.pause)
        self.stop_button.clicked.connect(self.stop)
        self.recipe_box.activated.connect(self._switch)
        self.camera_box.activated.connect(self._switch)
        self.banner.acknowledge.connect(self.acknowledge)
        self.filmstrip.part_clicked.connect(controller.load_part)
        self.report_button.clicked.connect(self.export_report)
        # Signals from worker threads go to bound methods of this window (a lambda would run on the emitting thread).
        controller.report_written.connect(self._on_report_written)
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
        controller.ready.connect(self._on_ready)
        controller.failed.connect(self._on_failed)
        controller.started.connect(self._on_started)
        controller.stopped.connect(self._on_stopped)
        controller.busy.connect(self._on_busy)
        controller.stats.connect(self.show_stats)
        controller.part_loaded.connect(self._on_part_loaded)
        self._busy = ""
        self._shown_part: str | None = None
        self.display_lags_ms: collections.deque[float] = collections.deque(maxlen=100_000)  # verdict published -> shown
        self.part_dialog: PartDialog | None = None
        self.snapshot: StationSnapshot | None = None  # the last one shown
        self.closing = False  # the close was asked for: the line is being stopped and closed
        self.closed = False  # ... and it is: the window may go
        self.timer = QTimer(self)
        self.timer.setInterval(int(1000 / REFRESH_HZ))
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
        # Garbage is collected here, on the GUI thread, and nowhere else while the window is open:
        # an automatic collection runs on whichever thread allocates (the inspection thread, most
        # often), and a Qt object in a reference cycle must be destroyed on its own thread (such
        # a collection crashed the GUI tests now and then).
        gc.disable()
        self._gc_ticks = 0
        self.gc_timer = QTimer(self)
        self.gc_timer.setInterval(GC_INTERVAL_MS)
        self.gc_timer.timeout.connect(self._collect_garbage)
        self.gc_timer.start()
        self._checked_alone = False  # the accounts were read without an open line (see _on_failed)
        self._on_user(None)  # nobody is logged in at start
        QApplication.instance().installEventFilter(self)  # keys and clicks anywhere keep a login alive

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

    def _fill_boxes(self, recipes, recipe_path, cameras, camera_spec) -> None:  # noqa: ANN001
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

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
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
        self._gate_choices()

    def _on_started(self, run_id: int) -> None:
        self.stop_button.setEnabled(True)
        self.pause_button.setEnabled(True)
        self.statusBar().showMessage(f"Running (run {run_id})")

    def _on_stopped(self, message: str) -> None:
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.pause_button.setEnabled(False)
        self.statusBar().showMessage(message)

    def _on_busy(self, what: str) -> None:
        self._busy = what
        if what:
            self.statusBar().showMessage(what + " ...")
            self.setCursor(Qt.CursorShape.BusyCursor)
        else:
            self.unsetCursor()

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
        """Show the latest result (only if new), the light, the buttons and the alarms; never waits."""
        status = self.controller.status()
        fault = self.controller.check_fault()
        if fault:
            self.banner.show_message(fault)
        alarms = self.controller.active_alarms()
        if alarms != self.banner.alarms:
            self.banner.show_alarms(alarms)
        self._show_light(status)
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

    def _show_light(self, status) -> None:  # noqa: ANN001
        paused = status is not None and status.state is RunnerState.PAUSED
        self.pause_button.setText("Resume" if paused else "Pause")
        if self._busy:
            self.light.set_state("busy", self._busy)
        elif status is not None and status.state is RunnerState.FAULTED:
            self.light.set_state("fault", status.message)
        elif self.controller.line is None:
            self.light.set_state("off", "No camera open")
        elif status is not None and status.state is RunnerState.RUNNING and self.controller.running:
            self.light.set_state("live", "Grabbing and inspecting")
        elif paused:
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

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt's name)
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
        self.gc_timer.stop()
        gc.collect()
        gc.enable()
        self.close()

    def _collect_garbage(self) -> None:
        """The two young generations every tick (about a millisecond), everything not frozen every minute."""
        self._gc_ticks += 1
        gc.collect(2 if self._gc_ticks % 60 == 0 else 1)


class PartDialog(QDialog):
    """A recorded reject at full size with its defect outline, its verdict, classes and score."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Part")
        self.resize(1000, 560)
        layout = QVBoxLayout(self)
        self.info = QLabel("")
        self.info.setObjectName("detail")
        self.view = ImageView()
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        layout.addWidget(self.info)
        layout.addWidget(self.view, 1)
        layout.addWidget(close, alignment=Qt.AlignmentFlag.AlignRight)

    def show_part(self, part: PartView, tz: dt.tzinfo | None = None) -> None:
        r = part.row
        score = f"{r.score:.3g}" if r.score is not None else "n/a"
        when = r.ts.replace(tzinfo=dt.UTC).astimezone(tz)
        self.info.setText(
            f"{r.verdict} - part {r.seq} ({r.part_id}) at {when:%Y-%m-%d %H:%M:%S %Z} - "
            f"{', '.join(r.classes) or 'no class'} - score {score}" + (f"\n{part.message}" if part.message else "")
        )
        if part.image is not None:
            self.view.set_image(part.image)
        else:
            self.view.show_text(part.message)
        self.show()
        self.raise_()


def settle_garbage() -> None:
    """Once a line is open: collect, then freeze what is alive. A full garbage collection walks
    every live object (the model, SQLAlchemy, Qt's wrappers) holding the GIL - 150 ms measured in
    bench/bench_gui.py, a frozen window; frozen objects are left out of later collections. It runs
    here, on the GUI thread: a collection on a worker thread may free Qt objects caught in
    reference cycles, and Qt objects must be destroyed on their own thread (it crashed the tests).
    Unfreezing first lets a line closed by a switch of recipe or camera be freed."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def camera_label(spec: str) -> str:
    """How a camera spec reads in the picker: `Emulator: samples`, `Simulated: parts`, `Basler 2301...`."""
    kind, _, arg = spec.partition(":")
    names = {"sim": "Simulated", "emu": "Basler emulator", "basler": "Basler"}
    if kind in ("sim", "emu"):
        return f"{names[kind]}: {Path(arg).name}"
    return f"Basler {arg}" if arg else "Basler (first found)"


def recipe_path(value: object) -> Path | None:
    """A remembered recipe path that still exists, else None (the default recipe)."""
    if isinstance(value, str) and value and Path(value).is_file():
        return Path(value)
    return None
