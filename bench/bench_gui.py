"""The operator window under load: Basler's emulator free-running at its full rate into the demo
model for 60 s; the longest GUI-thread stall and the verdict-to-screen lag (app/gui_bench.py does
the measuring: Qt is imported in app/ only).

    xvfb-run -a .venv/bin/python bench/bench_gui.py [--seconds 60] [--model PKG] [--images DIR]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt loads
os.environ.setdefault("PYLON_CAMEMU", "1")  # before pylon enumerates

from app.gui_bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
