"""Start the GUI: `lepton-inspect gui` (and `make run`)."""

from __future__ import annotations

import argparse
import sys

from PySide6.QtWidgets import QApplication

import resources
from app.gui.controller import LineController
from app.gui.main_window import MainWindow
from inspection.line import Line, open_line


def build_window(args: argparse.Namespace, default_camera_spec: str) -> MainWindow:
    spec = args.camera or default_camera_spec

    def opener() -> Line:
        return open_line(camera_spec=spec, model=args.model, db=args.db, recipe=args.recipe, config=args.config, device=args.device)

    controller = LineController(opener)
    window = MainWindow(controller, spec)
    controller.open()
    return window


def run_gui(args: argparse.Namespace, default_camera_spec: str) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Lepton Inspect")
    app.setStyleSheet(resources.STYLE_SHEET.read_text(encoding="utf-8"))
    window = build_window(args, default_camera_spec)
    window.show()
    return app.exec()
