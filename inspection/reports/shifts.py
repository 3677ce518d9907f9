"""The automatic report at the end of each shift: a thread beside the open line writes each finished
shift's PDF, CSV and JSON into the configured folder.
It only reads the record (aggregates in SQL, well under a second for 100,000 parts) and logs one
event; it never touches the inspection threads."""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from inspection.priority import background_thread
from inspection.record.schema import Event, Shift
from inspection.record.store import Store
from inspection.reports.figures import Window, gather, write_csv, write_json
from inspection.settings.config import Config

log = logging.getLogger(__name__)


def report_stem(config: Config, name: str, start_utc: dt.datetime) -> str:
    local = start_utc.replace(tzinfo=dt.UTC).astimezone(config.shifts.tz)
    line = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in config.line)
    return f"{line}-shift-{name}-{local:%Y%m%d-%H%M}"


def write_shift_report(store: Store, config: Config, window: Window, folder: Path, stem: str | None = None) -> Path:
    """PDF, CSV and JSON of one window into `folder` (named `stem`, else after the line and shift);
    returns the PDF's path."""
    from inspection.reports.pdf import write_pdf  # (reportlab loads when a report is written, not with the line)

    folder.mkdir(parents=True, exist_ok=True)
    stem = stem or report_stem(config, window.title.removeprefix("Shift "), window.start)
    data = gather(store, window, config.shifts.tz, line=config.line)
    pdf = folder / f"{stem}.pdf"
    write_pdf(data, pdf)
    write_csv(store, data, folder / f"{stem}.csv")
    write_json(data, folder / f"{stem}.json")
    return pdf


class ShiftReporter:
    """Every `interval_s` (and at once when started) reports each shift of the record that ended at
    least `GRACE` ago (the last parts are committed), in the last `LOOKBACK`, and has no report yet.
    A written report is an event in the record, so a shift is reported once, also across restarts,
    and one that ended while the station was closed is reported when it opens again. A report that
    fails is tried again after `RETRY`."""

    GRACE = dt.timedelta(seconds=10)
    LOOKBACK = dt.timedelta(days=2)
    RETRY = dt.timedelta(minutes=10)

    def __init__(
        self,
        store: Store,
        config: Config,
        folder: Path,
        *,
        interval_s: float = 30.0,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.store = store
        self.config = config
        self.folder = folder
        self.interval_s = interval_s
        self._now = now
        self._failed: dict[int, dt.datetime] = {}  # shift id -> when it may be tried again
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written: list[Path] = []

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="lepton-shift-reports", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
            self._thread = None

    def _loop(self) -> None:
        background_thread()
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:  # never let the thread die: try again at the next check
                log.exception("the automatic shift report failed")
            self._stop.wait(self.interval_s)

    def check(self) -> list[Path]:
        """Report every ended shift without a report; the PDFs written."""
        now = self._now().astimezone(dt.UTC).replace(tzinfo=None)
        with self.store.session() as s:
            ended = s.execute(
                select(Shift.id, Shift.name, Shift.start_at, Shift.end_at)
                .where(Shift.end_at <= now - self.GRACE, Shift.end_at > now - self.LOOKBACK)
                .order_by(Shift.start_at)
            ).all()
            reported = {
                int(m.group(1))
                for (msg,) in s.execute(select(Event.message).where(Event.kind == "report", Event.level == "info"))
                if (m := _MARKER.search(msg))
            }
        written = []
        for shift_id, name, start, end in ended:
            if shift_id in reported or self._failed.get(shift_id, now) > now or self._stop.is_set():
                continue
            try:
                pdf = write_shift_report(
                    self.store, self.config, Window(start, end, f"Shift {name}", shift_id), self.folder
                )
            except Exception as exc:  # a full disk, a folder that cannot be written: say so, try again later
                self._failed[shift_id] = now + self.RETRY
                log.error("the report of shift %s could not be written: %s", shift_id, exc)
                self.store.log_event(
                    "report",
                    f"The report of shift {name} (shift id {shift_id}) could not be written to "
                    f"{self.folder}: {exc}. Trying again in {self.RETRY.seconds // 60} minutes.",
                    level="warning",
                )
                continue
            self._failed.pop(shift_id, None)
            self.store.log_event("report", f"Report of shift {name} (shift id {shift_id}) written: {pdf}.")
            log.info("shift report written: %s", pdf)
            self.written.append(pdf)
            written.append(pdf)
        return written


_MARKER = re.compile(r"^Report of shift .* \(shift id (\d+)\) written")
