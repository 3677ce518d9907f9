"""Who may do what at the station, in the window (pytest-qt, offscreen, the simulated camera and the
demo model on a real SQLite file): the first administrator at first start, adding an operator in
the Users tab, what an operator's login greys out and what the core still refuses, a wrong
password, and the logout after inactivity that leaves the line running and Stop unlocked."""

from __future__ import annotations

from PySide6.QtCore import Qt

from inspection.access import audit, users
from tests.gui.test_main_window import PASSWORD, TIMEOUT_MS, close, log_in, make_window, sql


def test_first_start_creates_the_admin_who_adds_an_operator_whose_role_limits_the_window_and_the_core(
    qtbot, tmp_path, samples
):
    win = make_window(qtbot, tmp_path, f"sim:{samples}", user=None)  # a fresh database: no account at all
    try:
        bar = win.login_bar
        qtbot.waitUntil(lambda: bar.first and bar.repeat.isVisible(), timeout=TIMEOUT_MS)
        assert bar.login_button.text() == "Create administrator" and not win.start_button.isEnabled()
        assert not win.tabs.isTabEnabled(win.tabs.indexOf(win.review)) and win.stop_button.isVisible()
        bar.name.setText("boss")
        bar.password.setText(PASSWORD)
        bar.repeat.setText(PASSWORD + "x")
        qtbot.mouseClick(bar.login_button, Qt.MouseButton.LeftButton)
        assert win.session.user is None and "differ" in win.statusBar().currentMessage()
        bar.password.setText(PASSWORD)
        bar.repeat.setText(PASSWORD)
        qtbot.mouseClick(bar.login_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: win.session.user is not None, timeout=TIMEOUT_MS)
        assert win.session.user.role is users.Role.ADMIN and not bar.repeat.isVisible()
        assert win.tabs.isTabEnabled(win.tabs.indexOf(win.users))

        # the admin adds an operator in the Users tab
        win.tabs.setCurrentWidget(win.users)
        qtbot.waitUntil(lambda: win.users.list.count() == 1, timeout=TIMEOUT_MS)
        win.users.name.setText("op")
        win.users.role.setCurrentIndex(win.users.role.findData("operator"))
        win.users.password.setText(PASSWORD)
        qtbot.mouseClick(win.users.add_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: win.users.list.count() == 2, timeout=TIMEOUT_MS)
        assert "op  -  operator" in [win.users.list.item(k).text() for k in range(2)]

        # the operator: runs the line; no review, models, users or report
        qtbot.mouseClick(bar.logout_button, Qt.MouseButton.LeftButton)
        assert (
            win.session.user is None and not win.start_button.isEnabled() and win.tabs.currentWidget() is win.splitter
        )
        log_in(qtbot, win, "op")
        qtbot.waitUntil(win.start_button.isEnabled, timeout=TIMEOUT_MS)
        for page in (win.review, win.models, win.users):
            assert not win.tabs.isTabEnabled(win.tabs.indexOf(page))
        assert not win.report_button.isEnabled()
        # ... and the core refuses what a greyed-out button would have asked, whoever asks
        part = _one_part(qtbot, win)
        with qtbot.waitSignal(win.review_controller.failed, timeout=TIMEOUT_MS) as refused:
            win.review_controller.relabel(part, "OK", user=win.session.user, classes=(), mask=None, comment="")
        assert "may not relabel parts" in refused.args[0]
        assert sql(tmp_path / "gui.db", "select count(*) from relabels") == [(0,)]
        store = win.controller.line.store
        assert audit.verify(store).ok
        actions = [(e.who, e.action) for e in reversed(audit.entries(store, 100))]
        assert actions[:4] == [
            ("boss", "user_created"),
            ("boss", "login"),
            ("boss", "user_created"),
            ("boss", "logout"),
        ]
        assert ("op", "login") in actions
    finally:
        close(qtbot, win)


def _one_part(qtbot, win):
    win.start_button.click()
    db = win.controller.line.store.path
    qtbot.waitUntil(lambda: sql(db, "select count(*) from inspections")[0][0] >= 1, timeout=TIMEOUT_MS)
    with qtbot.waitSignal(win.controller.stopped, timeout=TIMEOUT_MS):
        win.stop_button.click()
    return sql(db, "select part_id from inspections limit 1")[0][0]


def test_a_wrong_password_logs_nobody_in_and_is_audited(qtbot, tmp_path, samples):
    win = make_window(qtbot, tmp_path, f"sim:{samples}")  # logged in as eng
    try:
        win.session.logout("test")
        win.login_bar.name.setText("eng")
        win.login_bar.password.setText("not the password")
        with qtbot.waitSignal(win.controller.failed, timeout=TIMEOUT_MS) as failed:
            qtbot.mouseClick(win.login_bar.login_button, Qt.MouseButton.LeftButton)
        assert "refused: the user name or password is wrong" in failed.args[0] and win.session.user is None
        assert not win.login_bar.password.text()  # the typed password does not stay in the field
        assert [e.action for e in audit.entries(win.controller.line.store, 1)] == ["login_failed"]
    finally:
        close(qtbot, win)


def test_inactivity_logs_out_but_the_line_runs_on_and_stop_stays_unlocked(qtbot, tmp_path, samples):
    win = make_window(qtbot, tmp_path, f"sim:{samples}", user=("op", "operator"))
    try:
        qtbot.waitUntil(win.start_button.isEnabled, timeout=TIMEOUT_MS)
        win.start_button.click()
        qtbot.waitUntil(lambda: win.controller.running, timeout=TIMEOUT_MS)
        win.session.set_idle_minutes(1 / 60)  # a second, for the test (the config's auto_logout_min)
        win.session.touch()
        qtbot.waitUntil(lambda: win.session.user is None, timeout=TIMEOUT_MS)
        assert win.controller.running and not win.start_button.isEnabled() and not win.pause_button.isEnabled()
        assert win.stop_button.isEnabled()  # anyone may stop the line
        with qtbot.waitSignal(win.controller.stopped, timeout=TIMEOUT_MS):
            win.stop_button.click()
        store = win.controller.line.store
        qtbot.waitUntil(lambda: any(e.action == "logout" for e in audit.entries(store, 10)), timeout=TIMEOUT_MS)
        logout = next(e for e in audit.entries(store, 10) if e.action == "logout")
        assert logout.who == "op" and "inactivity" in logout.detail_json
    finally:
        close(qtbot, win)
