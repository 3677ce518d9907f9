"""The automatic shift report: written once per ended shift (also across a restart, and for a shift
that ended while the station was closed), with the finished shift's parts; retried after a failure."""

from __future__ import annotations

import datetime as dt
import json

from inspection.reports.shifts import ShiftReporter


def events(line, kind):
    with line.store.engine.connect() as con:
        return [m for (m,) in con.exec_driver_sql("select message from events where kind = ?", (kind,)).fetchall()]


def test_each_ended_shift_is_reported_once(make_line, tmp_path):
    line = make_line()
    assert line.start(max_parts=6).wait(30)
    line.stop()
    now = [dt.datetime.now(dt.UTC)]
    reporter = ShiftReporter(line.store, line.config, tmp_path / "reports", now=lambda: now[0])
    assert reporter.check() == []  # the shift is still on
    name, start, end = line.config.shifts.shift_at(now[0])
    now[0] = end + dt.timedelta(seconds=5)
    assert reporter.check() == []  # its last parts may still be committing
    now[0] = end + dt.timedelta(minutes=1)
    (pdf,) = reporter.check()
    assert pdf.is_file() and pdf.read_bytes().startswith(b"%PDF")
    figures = json.loads(pdf.with_suffix(".json").read_text())
    assert figures["inspected"] == 6 and figures["title"] == f"Shift {name}"
    assert len(pdf.with_suffix(".csv").read_text().splitlines()) == 7
    assert reporter.check() == []  # once per shift
    restarted = ShiftReporter(line.store, line.config, tmp_path / "reports", now=lambda: now[0])
    assert restarted.check() == []  # the record says it was reported
    assert len([m for m in events(line, "report") if "written" in m]) == 1


def test_a_shift_that_ended_while_closed_is_reported_at_start_and_failures_retry(make_line, tmp_path):
    line = make_line()
    assert line.start(max_parts=4).wait(30)
    line.stop()
    _, _, end = line.config.shifts.shift_at(dt.datetime.now(dt.UTC))
    now = [end + dt.timedelta(hours=3)]  # the station was closed over the shift change
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the folder should be")
    reporter = ShiftReporter(line.store, line.config, blocked, now=lambda: now[0])
    assert reporter.check() == []
    assert any("could not be written" in m for m in events(line, "report"))
    reporter.folder = tmp_path / "reports"
    assert reporter.check() == []  # not before the retry time
    now[0] += ShiftReporter.RETRY
    assert len(reporter.check()) == 1
