"""Take the README's screenshot: start the GUI on the embedded default, inspect a few parts,
save the window as PNG. Run under a virtual screen: `make screenshot`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from PySide6.QtWidgets import QApplication

import resources
from app.cli import default_camera_spec
from app.gui.main import build_window


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--db", type=Path, default=None)
    ap.add_argument("--parts", type=int, default=14)
    a = ap.parse_args(argv)
    args = argparse.Namespace(camera=None, model=None, db=a.db, recipe=None, config=None, device="auto")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setStyleSheet(resources.STYLE_SHEET.read_text(encoding="utf-8"))
    window = build_window(args, default_camera_spec())
    window.resize(1500, 760)
    window.show()
    deadline = time.monotonic() + 120
    started = False
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
        if not started and window.start_button.isEnabled():
            window.start()
            started = True
        s = window.controller.status()
        r = window.controller.latest()
        if s is not None and s.parts >= a.parts and r is not None and r.verdict.value == "NG":
            window.stop()
            break
    for _ in range(50):
        app.processEvents()
        time.sleep(0.02)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(a.out))
    window.close()
    print(f"saved {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
