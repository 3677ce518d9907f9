"""Start the GUI: `lepton-inspect gui` (and `make run`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

import resources
from app.gui.controller import LineController
from app.gui.main_window import MainWindow
from app.gui.pickers import recipe_path
from inspection.line import Line, open_line
from inspection.record.server import is_url
from inspection.settings.config import data_dir, default_db


def station_settings() -> QSettings:
    """The window's state (camera, recipe, layout, overlay) in the user data folder, so that it
    survives a restart and tests never touch a real station's."""
    return QSettings(str(data_dir() / "gui.ini"), QSettings.Format.IniFormat)


def build_window(args: argparse.Namespace, default_camera_spec: str, settings: QSettings | None = None) -> MainWindow:
    """The window on the camera and recipe asked for, else the ones last used, else the defaults."""
    settings = settings if settings is not None else station_settings()
    spec = args.camera or str(settings.value("camera", "") or "") or default_camera_spec
    recipe = args.recipe or recipe_path(settings.value("recipe", ""))

    def opener(camera_spec: str, recipe_file: Path | None) -> Line:
        return open_line(
            camera_spec=camera_spec,
            model=args.model,
            db=args.db,
            recipe=recipe_file,
            config=args.config,
            device=args.device,
            buffer=getattr(args, "buffer", None),
        )

    controller = LineController(opener, spec, recipe)
    controller.model_pinned = args.model is not None
    # The station's own file: --db, or with a server's URL its buffer (--buffer, else the default file).
    controller.db = (
        args.db if args.db is not None and not is_url(args.db) else (getattr(args, "buffer", None) or default_db())
    )
    window = MainWindow(controller, settings)
    controller.open()
    return window


def run_gui(args: argparse.Namespace, default_camera_spec: str) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Lepton Inspect")
    app.setStyleSheet(resources.STYLE_SHEET.read_text(encoding="utf-8"))
    window = build_window(args, default_camera_spec)
    window.show()
    return app.exec()
