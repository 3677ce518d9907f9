"""Take the README's screenshots: start the GUI on the embedded default (the emulator playing the
bundled samples, the demo model, a fresh database), inspect until an NG part is on screen, save the
window; then pull the camera (the emulator's removal event) and save the window with its alarm;
then the engineer's tabs: a reject open in Review with the model's mask taken into the editor, and,
after relabelling the rejects and training a candidate, the Models tab with its comparison.
Run under a virtual screen: `make screenshot`."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication

import resources
from app.cli import default_camera_spec
from app.gui.main import build_window

if TYPE_CHECKING:
    from app.gui.main_window import MainWindow
    from app.gui.review_controller import ReviewPart
    from app.gui.review_view import ReviewView


def _pump(app: QApplication, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def _wait(app: QApplication, done: Callable[[], bool], seconds: float = 120) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)
        if done():
            return True
    return False


def _label_all(app: QApplication, view: ReviewView, truth: Callable[[ReviewPart], str]) -> bool:
    """Label every part the review shows (the filter leaves out the unreviewed ones as they are labelled)."""
    if not _wait(app, lambda: view.page is not None and view.page.filter == view.current_filter(), 60):
        return False

    def ids() -> list[str]:
        return [view.gallery.item(k).data(Qt.ItemDataRole.UserRole) for k in range(view.gallery.count())]

    for part_id in ids():
        if not _wait(app, lambda p=part_id: p in ids(), 10):  # (the page is reloaded after each label)
            continue
        view.gallery.setCurrentRow(ids().index(part_id))
        if not _wait(app, lambda p=part_id: view.part is not None and view.part.row.part_id == p, 60):
            shown = view.part.row.part_id if view.part else None
            print(
                f"part {part_id} did not load: selected {view.selected_part_id()}, shown {shown}, "
                f"save {view.save_button.isEnabled()}, {view.gallery.count()} in the gallery, filter {view.page.filter}"
            )
            return False
        if view.part.images is None:
            continue  # its image was not kept (OK parts: one in ten): nothing to judge
        if not _wait(app, view.save_button.isEnabled, 10):
            return False
        if truth(view.part) == "NG":
            if not view.editor.mask().any():
                view.editor.start_from_model()
            view.reject_part()
        else:
            view.accept_part()
        _wait(app, lambda p=part_id: not view.save_button.isEnabled() or view.part.row.part_id != p, 10)
        _pump(app, 0.3)
    return True


TOOL_PASSWORD = "tool-only-password"


def tool_accounts(db: Path, name: str, role: str) -> None:
    """For the tools that drive the window on a fresh station (screenshots, the GUI bench): an admin
    and `name`, created through the core before the window opens the database."""
    from inspection.access import users
    from inspection.record.opening import open_record

    with open_record(db) as store:
        admin = users.create_first_admin(store, "admin", TOOL_PASSWORD)
        users.create_user(store, admin, name, role, TOOL_PASSWORD)


def tool_login(app: QApplication, window: MainWindow, name: str) -> bool:
    """Log `name` in as a person does (the password is checked on the line's worker)."""
    window.session.login(name, TOOL_PASSWORD)
    return _wait(app, lambda: window.session.user is not None, 60)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("live", type=Path, help="PNG of the live view with an NG part")
    ap.add_argument("alarm", type=Path, help="PNG of the window after the camera was pulled")
    ap.add_argument("review", type=Path, help="PNG of the Review tab with a reject open")
    ap.add_argument("models", type=Path, help="PNG of the Models tab with a candidate compared")
    ap.add_argument("--parts", type=int, default=30)
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="lepton-screenshot-"))
    os.environ["LEPTON_DATA_DIR"] = str(work)  # a fresh station: no earlier record, settings or alarms
    # The reject output on (the emulator's Line2), so that the line's wiring panel counts pulses.
    (work / "station.toml").write_text("[reject]\nenabled = true\ndelay_ms = 1000.0\n", encoding="utf-8")
    args = argparse.Namespace(
        camera=None, model=None, db=work / "lepton.db", recipe=None, config=work / "station.toml", device="auto"
    )
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setStyleSheet(resources.STYLE_SHEET.read_text(encoding="utf-8"))
    tool_accounts(args.db, "A. Engineer", "engineer")
    window = build_window(args, default_camera_spec(), QSettings(str(work / "gui.ini"), QSettings.Format.IniFormat))
    window.resize(1500, 900)
    window.show()
    if not tool_login(app, window, "A. Engineer") or not _wait(app, window.start_button.isEnabled):
        print(f"the line did not open: {window.banner.text.text()}")
        return 1
    window.start()

    def ng_on_screen() -> bool:
        s, r = window.controller.status(), window.controller.latest()
        return (
            s is not None
            and s.parts >= a.parts
            and r is not None
            and r.verdict.value == "NG"
            and window.verdict.verdict.text() == "NG"
        )

    # The record's counters and rejects refresh once a second; the line inspects 30 parts in less.
    _wait(app, lambda: (window.controller.status() or SimpleNamespace(parts=0)).parts >= a.parts)
    window.controller.refresh_stats()
    _pump(app, 1.5)
    if not _wait(app, ng_on_screen):
        print("no NG part came up")
        return 1
    for path in (a.live, a.alarm, a.review, a.models):
        path.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(a.live))  # at once: the next part replaces this one within a refresh
    window.controller.line.camera.fire_removal()  # pull the cable
    _wait(app, lambda: any(al.kind == "camera" for al in window.banner.alarms), 30)
    window.controller.refresh_stats()
    _pump(app, 2.0)
    window.grab().save(str(a.alarm))
    window.stop()  # the station reconnected and inspects on: stop it, so that the review below sees a settled record
    _wait(app, lambda: not window.controller.running and window.start_button.isEnabled(), 60)
    if not _engineer(app, window, a.review, a.models):
        return 1
    window.close()
    _wait(app, lambda: window.closed, 60)
    print(f"saved {a.live}, {a.alarm}, {a.review} and {a.models}")
    return 0


def _engineer(app: QApplication, window: MainWindow, review_png: Path, models_png: Path) -> bool:
    """The engineer's pass over the record, as a person who knows the bundled images: the three
    pitted frames score above 40 with the demo model (two are rejected, one passes as OK: an
    escape), the five good ones below. Rejects are confirmed NG with the model's mask; the kept OK
    parts are confirmed OK, and the escape among them is relabelled NG."""
    view, models = window.review, window.models
    for alarm in window.banner.alarms:
        window.acknowledge((alarm.event_id,))
    window.banner.show_message("")
    window.tabs.setCurrentWidget(view)
    if not _label_all(app, view, lambda part: "NG"):
        return False
    view.gallery.setCurrentRow(0)
    _wait(app, lambda: view.part is not None and view.editor.isEnabled(), 60)
    view.editor.start_from_model()
    _pump(app, 0.5)
    window.grab().save(str(review_png))
    view.verdict_box.setCurrentIndex(view.verdict_box.findText("OK"))
    view.label_box.setCurrentIndex(view.label_box.findData("unreviewed"))
    view.reload()
    if not _label_all(app, view, lambda part: "NG" if (part.row.score or 0) > 40 else "OK"):
        return False
    window.tabs.setCurrentWidget(models)
    _wait(app, lambda: models.state is not None, 60)
    models.train()
    if not _wait(app, lambda: models.train_button.isEnabled() and bool(models.rows), 300):
        print(f"no candidate: {models.stage.text()}")
        return False
    _pump(app, 0.5)
    window.grab().save(str(models_png))
    return True


if __name__ == "__main__":
    raise SystemExit(main())
