"""The automatic report at the end of each shift: a thread beside the running line notices that
the shift changed and writes the finished shift's PDF, CSV and JSON into the configured folder.
It only reads the record (aggregates in SQL, well under a second for 100,000 parts) and logs one
event; it never touches the inspection threads."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from inspection.config import Config
from inspection.report import Window, gather, write_csv, write_json
from inspection.store import Store

log = logging.getLogger(__name__)


def report_stem(config: Config, name: str, start_utc: dt.datetime) -> str:
    local = start_utc.replace(tzinfo=dt.timezone.utc).astimezone(config.shifts.tz)
    line = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in config.line)
    return f"{line}-shift-{name}-{local:%Y%m%d-%H%M}"


def write_shift_report(store: Store, config: Config, window: Window, folder: Path, stem: str | None = None) -> Path:
    """PDF, CSV and JSON of one window into `folder` (named `stem`, else after the line and shift);
    returns the PDF's path."""
    from inspection.report_pdf import write_pdf  # reportlab only when a report is written

    folder.mkdir(parents=True, exist_ok=True)
    stem = stem or report_stem(config, window.title.removeprefix("Shift "), window.start)
    data = gather(store, window, config.shifts.tz, line=config.line)
    pdf = folder / f"{stem}.pdf"
    write_pdf(data, pdf)
    write_csv(store, window, folder / f"{stem}.csv")
    write_json(data, folder / f"{stem}.json")
    return pdf


class ShiftReporter:
    """Checks every `interval_s` which shift it is; when one has ended, reports it."""

    def __init__(self, store: Store, config: Config, folder: Path, *, interval_s: float = 30.0,
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)) -> None:
        self.store = store
        self.config = config
        self.folder = folder
        self.interval_s = interval_s
        self._now = now
        self._current = config.shifts.shift_at(now())
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
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # a full disk, a locked database: say so, try again at the next shift
                log.exception("the automatic shift report failed")

    def check(self) -> Path | None:
        """Report the shift that just ended, if one did; the PDF's path, else None."""
        shift = self.config.shifts.shift_at(self._now())
        ended, self._current = self._current, shift
        if shift[1] == ended[1]:
            return None
        name, start, end = ended
        window = Window(start.replace(tzinfo=None), end.replace(tzinfo=None), f"Shift {name}")
        try:
            pdf = write_shift_report(self.store, self.config, window, self.folder)
        except Exception as exc:
            self.store.log_event("report", f"The report of shift {name} could not be written to {self.folder}: {exc}.", level="warning")
            raise
        self.written.append(pdf)
        self.store.log_event("report", f"Report of shift {name} written: {pdf}.")
        log.info("shift report written: %s", pdf)
        return pdf
