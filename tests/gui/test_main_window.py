"""The first-cut main window, offscreen, against Basler's emulator playing the demo samples."""

from __future__ import annotations

import argparse
import sqlite3

import pytest

from app.gui.main import build_window
from inspection.runner import RunnerState

TIMEOUT_MS = 60_000


@pytest.fixture
def window(qtbot, tmp_path, samples):
    args = argparse.Namespace(camera=f"emu:{samples}", model=None, db=tmp_path / "gui.db", recipe=None, config=None, device="cpu")
    win = build_window(args, default_camera_spec="unused")
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(win.start_button.isEnabled, timeout=TIMEOUT_MS)
    yield win
    win.close()


def db_counts(path):
    con = sqlite3.connect(path)
    try:
        return dict(con.execute("select verdict, count(*) from inspections group by verdict").fetchall())
    finally:
        con.close()


def test_start_shows_verdicts_and_counters_that_match_the_database(qtbot, window, tmp_path):
    qtbot.keyClick(window, " ")  # Space starts the line
    qtbot.waitUntil(lambda: window.controller.running, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: int(window.counters.values["parts"].text()) >= 10, timeout=TIMEOUT_MS)
    assert window.verdict.verdict.text() in ("OK", "NG", "REVIEW")
    assert window.view.pixmap() is not None and not window.view.pixmap().isNull()
    with qtbot.waitSignal(window.controller.stopped, timeout=TIMEOUT_MS):
        window.stop_button.click()
    window.refresh()
    shown = {k: int(window.counters.values[k].text()) for k in ("parts", "ok", "ng", "review", "recorded")}
    counts = db_counts(tmp_path / "gui.db")
    assert shown["parts"] == shown["recorded"] == sum(counts.values())
    assert (shown["ok"], shown["ng"], shown["review"]) == (counts.get("OK", 0), counts.get("NG", 0), counts.get("REVIEW", 0))
    assert window.start_button.isEnabled() and not window.stop_button.isEnabled()


def test_pulled_camera_raises_an_alarm_banner(qtbot, window, tmp_path):
    window.start_button.click()
    qtbot.waitUntil(lambda: int(window.counters.values["parts"].text()) >= 3, timeout=TIMEOUT_MS)
    window.controller.line.camera.fire_removal()
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=TIMEOUT_MS)
    assert "disconnected" in window.banner.text()
    qtbot.waitUntil(lambda: window.start_button.isEnabled(), timeout=TIMEOUT_MS)
    assert window.controller.status().state is RunnerState.FAULTED
    assert sum(db_counts(tmp_path / "gui.db").values()) == window.controller.status().recorded


def test_a_bad_model_is_an_alarm_not_a_crash(qtbot, tmp_path, samples):
    bad = tmp_path / "bad.lpkg"
    bad.write_bytes(b"not a model")
    args = argparse.Namespace(camera=f"sim:{samples}", model=bad, db=tmp_path / "g.db", recipe=None, config=None, device="cpu")
    win = build_window(args, default_camera_spec="unused")
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(win.banner.isVisible, timeout=TIMEOUT_MS)
    assert "corrupt" in win.banner.text() and not win.start_button.isEnabled()
    win.close()
