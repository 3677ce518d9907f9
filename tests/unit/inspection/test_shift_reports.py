"""The automatic shift report: written once when the shift changes, with the finished shift's parts."""

from __future__ import annotations

import datetime as dt
import json

from inspection.shift_reports import ShiftReporter


def test_a_report_is_written_when_the_shift_ends(make_line, tmp_path):
    line = make_line()
    assert line.start(max_parts=6).wait(30)
    line.stop()
    now = [dt.datetime.now(dt.timezone.utc)]
    reporter = ShiftReporter(line.store, line.config, tmp_path / "reports", now=lambda: now[0])
    assert reporter.check() is None  # same shift: nothing yet
    name, start, end = line.config.shifts.shift_at(now[0])
    now[0] = end + dt.timedelta(minutes=1)  # the next shift has begun
    pdf = reporter.check()
    assert pdf is not None and pdf.is_file() and pdf.read_bytes().startswith(b"%PDF")
    figures = json.loads(pdf.with_suffix(".json").read_text())
    assert figures["inspected"] == 6 and figures["title"] == f"Shift {name}"
    assert len(pdf.with_suffix(".csv").read_text().splitlines()) == 7
    assert reporter.check() is None  # once per shift
    with line.store.engine.connect() as con:
        assert any("Report of shift" in m for (m,) in con.exec_driver_sql("select message from events").fetchall())
