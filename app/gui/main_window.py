"""The main window (first cut): live image with defect overlay, verdict, counters, start/stop."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMainWindow, QPushButton, QVBoxLayout, QWidget

from app.gui.controller import LineController
from app.gui.widgets import CountersPanel, ImageView, VerdictPanel
from inspection.overlay import render_overlay

REFRESH_HZ = 30


class MainWindow(QMainWindow):
    def __init__(self, controller: LineController, camera_spec: str) -> None:
        super().__init__()
        self.controller = controller
        self.setWindowTitle(f"Lepton Inspect - {camera_spec}")
        self.resize(1400, 800)
        self.view = ImageView()
        self.verdict = VerdictPanel()
        self.counters = CountersPanel()
        self.banner = QLabel("")
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.hide()
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(False)
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)

        side = QVBoxLayout()
        side.addWidget(self.verdict)
        side.addWidget(self.counters)
        side.addStretch(1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        side.addLayout(buttons)
        body = QHBoxLayout()
        body.addWidget(self.view, 3)
        body.addLayout(side, 1)
        outer = QVBoxLayout()
        outer.addWidget(self.banner)
        outer.addLayout(body)
        central = QWidget()
        central.setLayout(outer)
        self.setCentralWidget(central)
        self.statusBar().showMessage("Starting up")

        QShortcut(QKeySequence(Qt.Key.Key_Space), self, activated=self.toggle)
        controller.ready.connect(self._on_ready)
        controller.failed.connect(self._on_failed)
        controller.started.connect(self._on_started)
        controller.stopped.connect(self._on_stopped)
        controller.busy.connect(self._on_busy)
        self._shown_part: str | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(int(1000 / REFRESH_HZ))
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    # -- actions -------------------------------------------------------------------------
    def start(self) -> None:
        self.banner.hide()
        self.start_button.setEnabled(False)
        self.controller.start()

    def stop(self) -> None:
        self.stop_button.setEnabled(False)
        self.controller.stop()

    def toggle(self) -> None:
        if self.controller.running:
            self.stop()
        elif self.start_button.isEnabled():
            self.start()

    # -- controller signals (GUI thread) -------------------------------------------------
    def _on_ready(self) -> None:
        self.start_button.setEnabled(True)
        self.statusBar().showMessage("Ready - press Start (or Space)")

    def _on_failed(self, message: str) -> None:
        self.show_alarm(message)
        self.start_button.setEnabled(self.controller.line is not None and not self.controller.running)
        self.stop_button.setEnabled(self.controller.running)

    def _on_started(self, run_id: int) -> None:
        self.stop_button.setEnabled(True)
        self.statusBar().showMessage(f"Running (run {run_id})")

    def _on_stopped(self, message: str) -> None:
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.statusBar().showMessage(message)

    def _on_busy(self, what: str) -> None:
        if what:
            self.statusBar().showMessage(what + " ...")
            self.setCursor(Qt.CursorShape.BusyCursor)
        else:
            self.unsetCursor()

    def show_alarm(self, message: str) -> None:
        self.banner.setText(message)
        self.banner.show()

    # -- the pull timer ------------------------------------------------------------------
    def refresh(self) -> None:
        """Show the latest result (only if new) and the counters; never waits on anything."""
        status = self.controller.status()
        if status is not None:
            self.counters.show_status(status)
        fault = self.controller.check_fault()
        if fault:
            self.show_alarm(fault)
        result = self.controller.latest()
        if result is not None and result.part_id != self._shown_part:
            self._shown_part = result.part_id
            self.view.set_image(render_overlay(result.image, result.defect_mask, result.verdict))
            self.verdict.show_result(result)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        self.timer.stop()
        self.statusBar().showMessage("Stopping the line and saving ...")
        self.controller.shutdown()
        super().closeEvent(event)
