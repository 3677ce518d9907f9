"""The Qt binding itself: PySide6 6.12.0 dropped a reference to None at every call of a method that
returns nothing, and the station's window aborted ("deallocating None") after some minutes of
refreshing. This keeps such a binding out (pyproject.toml pins below it)."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QLabel, QPushButton


def test_methods_that_return_nothing_keep_none_alive(qapp):
    button, label = QPushButton("x"), QLabel("y")
    before = sys.getrefcount(None)
    for i in range(2000):  # (a window refreshing at 30 Hz makes this many calls in seconds)
        button.setText(str(i))
        button.setEnabled(i % 2 == 0)
        label.setText(str(i))
        button.update()
    assert sys.getrefcount(None) >= before - 50  # (other threads may hold a few Nones less meanwhile)
