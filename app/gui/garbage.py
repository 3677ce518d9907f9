"""Python's garbage collection while the window is open: on the GUI thread only, a little at a time.

An automatic collection runs on whichever thread allocates (the inspection thread, most often), and
a Qt object in a reference cycle must be destroyed on its own thread (such a collection crashed the
GUI tests now and then). So automatic collection is off while the window is open; a timer on the
GUI thread collects the young generations every second and everything not frozen every minute.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 1000


class GarbageTimer(QObject):
    """Collects the two young generations every tick (about a millisecond), everything not frozen every
    minute; `stop()` collects once more and hands collection back to Python."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ticks = 0
        self.timer = QTimer(self)
        self.timer.setInterval(INTERVAL_MS)
        self.timer.timeout.connect(self._collect)

    def start(self) -> None:
        gc.disable()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()
        gc.collect()
        gc.enable()

    def _collect(self) -> None:
        self._ticks += 1
        gc.collect(2 if self._ticks % 60 == 0 else 1)


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
