"""The operator window, offscreen, against Basler's emulator playing the demo samples (real pylon
stack, real model, real SQLite file): start, counters that match the record, pause, stop, a pulled
camera raising an alarm that is acknowledged while the line reconnects and goes on, and a restart
that rebuilds the counters."""

from __future__ import annotations

import argparse
import datetime as dt
import time

import pytest
from PySide6.QtCore import QSettings, Qt

from app.gui.main import build_window
from inspection.access import users
from inspection.record.opening import open_record
from inspection.runtime.status import RunnerState
from inspection.settings.config import load_config
from tests.fakes import sql

TIMEOUT_MS = 60_000


PASSWORD = "line-pc-test"


def accounts(db, *people):
    """The station's accounts (created through the core before the window opens the database): an
    admin, and each (name, role) asked for, all with PASSWORD."""
    with open_record(db) as store:
        if not users.has_users(store):
            users.create_first_admin(store, "admin", PASSWORD)
        admin = users.authenticate(store, "admin", PASSWORD)
        known = {a.name for a in users.list_users(store)}
        for name, role in people:
            if name not in known:
                users.create_user(store, admin, name, role, PASSWORD)


def log_in(qtbot, win, name):
    """Through the login bar, as a person does."""
    win.login_bar.name.setText(name)
    win.login_bar.password.setText(PASSWORD)
    qtbot.mouseClick(win.login_bar.login_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: win.session.user is not None and win.session.user.name == name, timeout=TIMEOUT_MS)


def make_window(qtbot, tmp_path, camera, model=None, user=("eng", "engineer")):
    """The window on a database in tmp_path, logged in as `user` (name, role) unless None."""
    db = tmp_path / "gui.db"
    if user is not None:
        accounts(db, user)
    args = argparse.Namespace(camera=camera, model=model, db=db, recipe=None, config=None, device="cpu")
    settings = QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    win = build_window(args, default_camera_spec="unused", settings=settings)
    # (not qtbot.addWidget: its teardown deletes the window while the line is still closing; close() below waits)
    win.show()
    if user is not None:
        log_in(qtbot, win, user[0])
    return win


def close(qtbot, win):
    """Close as the operator does: the line is stopped and closed in the background, then the window goes."""
    if not win.closed:
        win.close()
        qtbot.waitUntil(lambda: win.closed, timeout=TIMEOUT_MS)
    assert win.controller.line is None and not win.isVisible()


@pytest.fixture
def window(qtbot, tmp_path, samples):
    win = make_window(qtbot, tmp_path, f"emu:{samples}")
    qtbot.waitUntil(win.start_button.isEnabled, timeout=TIMEOUT_MS)
    yield win
    close(qtbot, win)


def db_counts(path, since=None):
    where, params = ("where ts >= ?", (since.isoformat(sep=" "),)) if since else ("", ())
    return dict(sql(path, f"select verdict, count(*) from inspections {where} group by verdict", *params))


def shown(window, column):
    return {k: window.counters.number(column, k) for k in ("parts", "ok", "ng", "review")}


def expected(counts):
    return {
        "parts": sum(counts.values()),
        "ok": counts.get("OK", 0),
        "ng": counts.get("NG", 0),
        "review": counts.get("REVIEW", 0),
    }


def fresh_stats(qtbot, window):
    """Wait until the window shows a statistics snapshot taken after now. (Not waitSignal on the
    once-a-second signal: a queued emission reaching a finished waiter crashed the test process.)"""
    asked = time.perf_counter()
    window.controller.refresh_stats()
    qtbot.waitUntil(lambda: window.snapshot is not None and window.snapshot.taken_at >= asked, timeout=TIMEOUT_MS)


def test_start_shows_verdicts_and_counters_that_match_the_database(qtbot, window, tmp_path):
    qtbot.keyClick(window, " ")  # Space starts the line
    qtbot.waitUntil(lambda: window.controller.running, timeout=TIMEOUT_MS)
    qtbot.waitUntil(
        lambda: (
            window.counters.values["start"]["parts"].text() not in ("-", "0")
            and window.counters.number("start", "parts") >= 10
        ),
        timeout=TIMEOUT_MS,
    )
    assert window.verdict.verdict.text() in ("OK", "NG", "REVIEW")
    assert window.view.pixmap() is not None and not window.view.pixmap().isNull()
    assert window.light.state == "live"
    with qtbot.waitSignal(window.controller.stopped, timeout=TIMEOUT_MS):
        window.stop_button.click()
    fresh_stats(qtbot, window)
    db = tmp_path / "gui.db"
    assert shown(window, "start") == expected(db_counts(db))
    _, start, _ = load_config().shifts.shift_at(dt.datetime.now(dt.UTC))
    assert shown(window, "shift") == expected(db_counts(db, start.replace(tzinfo=None)))
    assert window.controller.status().recorded == sum(db_counts(db).values())
    assert window.start_button.isEnabled() and not window.stop_button.isEnabled()
    assert window.light.state == "ready"
    # The rejects reach the filmstrip, and a click opens the part with its image.
    rejects = sql(db, "select count(*) from inspections where verdict != 'OK'")[0][0]
    assert window.filmstrip.count() == min(rejects, 8) and rejects > 0
    with qtbot.waitSignal(window.controller.part_loaded, timeout=TIMEOUT_MS):
        window.filmstrip.itemClicked.emit(window.filmstrip.item(0))
    qtbot.waitUntil(lambda: window.part_dialog is not None and window.part_dialog.isVisible(), timeout=TIMEOUT_MS)
    assert not window.part_dialog.view.pixmap().isNull()


def test_pause_stops_inspection_and_resume_goes_on(qtbot, window):
    window.start_button.click()
    qtbot.waitUntil(lambda: window.controller.running and (window.controller.status().parts >= 3), timeout=TIMEOUT_MS)
    window.pause_button.click()
    qtbot.waitUntil(lambda: window.light.state == "paused", timeout=TIMEOUT_MS)
    assert window.pause_button.text() == "Resume"
    before = window.controller.status().parts
    qtbot.wait(500)  # frames grabbed before the pause (one inspected, one waiting) still finish
    held = window.controller.status().parts
    assert held <= before + 3
    qtbot.wait(1000)
    assert window.controller.status().parts == held  # then nothing: the camera does not grab
    window.pause_button.click()
    qtbot.waitUntil(lambda: window.controller.status().parts > held + 3, timeout=TIMEOUT_MS)
    assert window.controller.status().state is RunnerState.RUNNING
    with qtbot.waitSignal(window.controller.stopped, timeout=TIMEOUT_MS):
        window.stop_button.click()


def test_pulled_camera_raises_an_alarm_that_is_logged_and_acknowledged_and_the_line_comes_back(qtbot, window, tmp_path):
    window.start_button.click()
    qtbot.waitUntil(lambda: window.controller.running and window.controller.status().parts >= 3, timeout=TIMEOUT_MS)
    window.controller.line.camera.fire_removal()  # the emulator's FirePnPCallback (the emulator is back at once)
    qtbot.waitUntil(lambda: any(a.kind == "camera" for a in window.banner.alarms), timeout=TIMEOUT_MS)
    assert window.banner.isVisible() and "disconnected" in window.banner.text.text()
    # The line reconnects by itself and goes on: the same run, live again, parts counting on.
    qtbot.waitUntil(lambda: window.controller.status().reconnects == 1, timeout=TIMEOUT_MS)
    back = window.controller.status()
    qtbot.waitUntil(lambda: window.controller.status().parts >= back.parts + 3, timeout=TIMEOUT_MS)
    assert window.controller.status().state is RunnerState.RUNNING and window.controller.running
    qtbot.waitUntil(lambda: window.light.state == "live", timeout=TIMEOUT_MS)
    assert window.stop_button.isEnabled() and not window.start_button.isEnabled()
    db = tmp_path / "gui.db"
    (event_id,) = [a.event_id for a in window.banner.alarms if a.kind == "camera"]
    assert sql(db, "select level, acknowledged_at from events where id = ?", event_id) == [("alarm", None)]
    qtbot.waitUntil(
        lambda: sql(db, "select count(*) from events where kind = 'camera' and level = 'info'")[0][0] == 1,
        timeout=TIMEOUT_MS,
    )
    fresh_stats(qtbot, window)
    texts = [window.events.item(i).text() for i in range(window.events.count())]
    assert any("disconnected" in t for t in texts) and any("reconnected" in t for t in texts)  # the loss and the return
    window.banner.ack_button.click()
    assert not window.banner.isVisible() and window.controller.active_alarms() == ()
    qtbot.waitUntil(
        lambda: sql(db, "select acknowledged_at from events where id = ?", event_id)[0][0] is not None,
        timeout=TIMEOUT_MS,
    )
    with qtbot.waitSignal(window.controller.stopped, timeout=TIMEOUT_MS):
        window.stop_button.click()
    assert (
        sum(db_counts(db).values()) == window.controller.status().recorded == window.controller.status().parts
    )  # nothing lost, nothing twice
    assert sql(db, "select count(*), min(end_state) from runs") == [(1, "stopped")]


def test_restart_rebuilds_the_counters_and_keeps_the_choices(qtbot, tmp_path, samples):
    first = make_window(qtbot, tmp_path, f"emu:{samples}")
    qtbot.waitUntil(first.start_button.isEnabled, timeout=TIMEOUT_MS)
    first.toggle_overlay()  # heatmap
    first.review.verdict_box.setCurrentIndex(1)  # NG only
    first.review.label_box.setCurrentIndex(first.review.label_box.findData("unreviewed"))
    first.review.score_min.setValue(40.0)
    first.start_button.click()
    qtbot.waitUntil(lambda: first.controller.running and first.controller.status().parts >= 6, timeout=TIMEOUT_MS)
    close(qtbot, first)  # stops the line, commits, closes the database (as quitting the program does)
    counts = db_counts(tmp_path / "gui.db")
    assert sum(counts.values()) >= 6

    again = make_window(qtbot, tmp_path, camera=None)  # no camera asked for: the last one is reopened
    try:
        qtbot.waitUntil(lambda: again.start_button.isEnabled() or again.banner.isVisible(), timeout=TIMEOUT_MS)
        assert again.start_button.isEnabled(), again.banner.text.text()
        assert again.choices.camera_spec == f"emu:{samples}" and again.overlay_mode == "heatmap"
        f = again.review.current_filter()  # the review's filters come back too
        assert (f.verdicts, f.label_state, f.score_min, f.score_max) == (("NG",), "unreviewed", 40.0, None)
        fresh_stats(qtbot, again)
        _, start, _ = load_config().shifts.shift_at(dt.datetime.now(dt.UTC))
        assert shown(again, "shift") == expected(db_counts(tmp_path / "gui.db", start.replace(tzinfo=None)))
        assert shown(again, "start") == expected({})  # since this start: nothing yet
    finally:
        close(qtbot, again)


def test_a_bad_model_is_an_alarm_not_a_crash(qtbot, tmp_path, samples):
    bad = tmp_path / "bad.lpkg"
    bad.write_bytes(b"not a model")
    accounts(tmp_path / "gui.db", ("eng", "engineer"))
    win = make_window(qtbot, tmp_path, f"sim:{samples}", model=bad, user=None)
    qtbot.waitUntil(win.banner.isVisible, timeout=TIMEOUT_MS)
    assert "corrupt" in win.banner.text.text() and not win.start_button.isEnabled()
    assert win.camera_box.count() >= 2 and win.camera_box.isEnabled()  # the operator can still pick another camera
    log_in(qtbot, win, "eng")  # no line open, yet someone can log in to put the station right
    close(qtbot, win)


def test_picking_a_recipe_reopens_the_line_with_it_and_is_remembered(qtbot, tmp_path, samples, monkeypatch):
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path))  # the station's recipes/ folder lives here
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "bolt.toml").write_text('name = "bolt"\n[verdict]\nok_below = 1.0\nng_at = 2.0\n')
    win = make_window(qtbot, tmp_path, f"sim:{samples}")
    try:
        qtbot.waitUntil(win.start_button.isEnabled, timeout=TIMEOUT_MS)
        names = [win.recipe_box.itemText(i) for i in range(win.recipe_box.count())]
        assert names[0].endswith("(default)") and "bolt" in names
        win.recipe_box.setCurrentIndex(names.index("bolt"))
        with qtbot.waitSignal(win.controller.ready, timeout=TIMEOUT_MS):
            win.recipe_box.activated.emit(names.index("bolt"))
        assert win.choices.recipe_name == "bolt" and win.controller.line.recipe.name == "bolt"
        assert win.choices.ng_at == 2.0  # the recipe's thresholds are in force
        win.start_button.click()
        qtbot.waitUntil(lambda: win.controller.running, timeout=TIMEOUT_MS)
        with qtbot.waitSignal(win.controller.failed, timeout=TIMEOUT_MS) as refused:
            win.controller.reopen(f"emu:{samples}", None, win.session.user)  # another camera: not while the line runs
        assert refused.args[0] == "Stop the line before changing the camera."
        # Another recipe while the line runs is a changeover between parts: the line runs on with it.
        run = win.controller.line.runner.run_id
        win.recipe_box.setCurrentIndex(0)  # the default recipe
        with qtbot.waitSignal(win.controller.ready, timeout=TIMEOUT_MS):
            win.recipe_box.activated.emit(0)
        assert win.controller.running and win.controller.line.runner.run_id == run + 1
        assert win.controller.line.recipe.name == win.choices.recipe_name == "demo-ballscrew"
        assert win.stop_button.isEnabled() and not win.start_button.isEnabled()
        assert "Changeover done" in win.statusBar().currentMessage()
        win.recipe_box.setCurrentIndex(names.index("bolt"))
        with qtbot.waitSignal(win.controller.ready, timeout=TIMEOUT_MS):
            win.recipe_box.activated.emit(names.index("bolt"))
        assert win.controller.line.recipe.name == "bolt" and win.controller.running
    finally:
        close(qtbot, win)
    assert QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat).value("recipe") == str(
        tmp_path / "recipes" / "bolt.toml"
    )


def test_qa_exports_the_shift_report_from_the_window(qtbot, window, tmp_path):
    window.start_button.click()
    qtbot.waitUntil(lambda: window.controller.running and window.controller.status().parts >= 5, timeout=TIMEOUT_MS)
    with qtbot.waitSignal(window.controller.stopped, timeout=TIMEOUT_MS):
        window.stop_button.click()
    window.session.logout("shift change")
    assert not window.report_button.isEnabled()
    store = (
        window.controller.line.store
    )  # (the open station holds the database: QA's account is added through its store)
    users.create_user(store, users.authenticate(store, "admin", PASSWORD), "qa", "qa", PASSWORD)
    log_in(qtbot, window, "qa")
    assert window.report_button.isEnabled() and not window.start_button.isEnabled()  # QA exports, does not run the line
    with qtbot.waitSignal(window.controller.report_written, timeout=TIMEOUT_MS) as written:
        window.controller.export_report(
            tmp_path / "qa" / "shift.pdf", window.session.user
        )  # what the button's file dialog asks for
    pdf = tmp_path / "qa" / "shift.pdf"
    assert written.args == [str(pdf)] and pdf.read_bytes().startswith(b"%PDF")
    figures = __import__("json").loads((tmp_path / "qa" / "shift.json").read_text())
    _, start, _ = load_config().shifts.shift_at(dt.datetime.now(dt.UTC))
    assert figures["inspected"] == sum(db_counts(tmp_path / "gui.db", start.replace(tzinfo=None)).values())
    qtbot.waitUntil(lambda: "Shift report written" in window.statusBar().currentMessage(), timeout=TIMEOUT_MS)
