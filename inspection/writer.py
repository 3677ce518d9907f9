"""The writer thread: the one place inspections are written to SQLite and the image folder.

Results arrive on a bounded queue; the writer saves a batch's images first, then commits the
batch's rows in one transaction (commits per second, not rows, are SQLite's limit). A row thus
never points at a missing image. A full queue blocks the inspection worker: results are never
dropped. A batch that still fails after a few tries is counted as unwritten and reported through
`on_error` (the runner then faults the line: a station that cannot record must not inspect).
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable

from inspection.config import Config, Recipe
from inspection.result import InspectionResult, Verdict
from inspection.store import ImageStore, Store, inspection_row, shift_id

log = logging.getLogger(__name__)

MAX_TRIES = 3


class ResultWriter:
    def __init__(self, store: Store, config: Config, recipe: Recipe, model_version_id: int,
                 on_error: Callable[[Exception], None] | None = None) -> None:
        self.store = store
        self.images = ImageStore(store)
        self.config = config
        self.recipe = recipe
        self.model_version_id = model_version_id
        self.on_error = on_error
        self._queue: queue.Queue[tuple[InspectionResult, bool]] = queue.Queue(maxsize=4 * config.commit_batch)
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._recorded = 0
        self._unwritten = 0
        self._ok_seen = 0
        self._lock = threading.Lock()
        self._shift_cache: dict[tuple[str, object], int] = {}

    @property
    def recorded(self) -> int:
        """Rows committed so far."""
        with self._lock:
            return self._recorded

    @property
    def unwritten(self) -> int:
        """Results that could not be written even after retrying (a full disk, a broken database)."""
        with self._lock:
            return self._unwritten

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="lepton-writer", daemon=True)
        self._thread.start()

    def put(self, result: InspectionResult) -> None:
        """Queue a result (blocks while the queue is full). Whether its image is kept is decided
        here, once, in the order parts were inspected."""
        self._queue.put((result, self._keep_image(result)))

    def close(self) -> None:
        """Write everything queued, then end the thread."""
        if self._thread is None:
            return
        self._closing.set()
        self._thread.join()
        self._thread = None

    def _keep_image(self, result: InspectionResult) -> bool:
        if result.verdict is not Verdict.OK:
            return True
        every = self.recipe.save_ok_every
        self._ok_seen += 1
        return every > 0 and (self._ok_seen - 1) % every == 0

    def _next_batch(self) -> list[tuple[InspectionResult, bool]]:
        batch: list[tuple[InspectionResult, bool]] = []
        deadline = time.monotonic() + self.config.commit_interval_s
        while len(batch) < self.config.commit_batch:
            try:
                batch.append(self._queue.get(timeout=max(0.0, min(0.05, deadline - time.monotonic()))))
            except queue.Empty:
                if time.monotonic() >= deadline or self._closing.is_set():
                    break
        return batch

    def _loop(self) -> None:
        failing = False
        while True:
            batch = self._next_batch()
            if not batch:
                if self._closing.is_set() and self._queue.empty():
                    return
                continue
            # Once a batch has failed all its tries (the run faults), later batches get one try
            # each until a write succeeds again: a stop must not wait out retries for every batch.
            tries = 1 if failing else MAX_TRIES
            for attempt in range(1, tries + 1):
                try:
                    self._write(batch)
                    failing = False
                    break
                except Exception as exc:  # a full disk, a locked or broken database
                    self._shift_cache.clear()
                    log.error("writing %d inspections failed (try %d of %d): %s", len(batch), attempt, tries, exc)
                    if attempt == tries:
                        failing = True
                        with self._lock:
                            self._unwritten += len(batch)
                        self._report(exc)
                    else:
                        time.sleep(0.2 * attempt)

    def _report(self, exc: Exception) -> None:
        if self.on_error is not None:
            try:
                self.on_error(exc)
            except Exception:
                log.exception("write-error handler failed")

    def _write(self, batch: list[tuple[InspectionResult, bool]]) -> None:
        rows = []
        image_error: Exception | None = None
        for r, keep in batch:
            image_path = mask_path = None
            note = r.error or None
            if keep:
                try:
                    image_path, mask_path = self.images.save(r)
                except Exception as exc:  # keep the row; say why its image is missing
                    image_error = exc
                    note = "; ".join(filter(None, [note, f"Image not saved: {exc}"]))
            rows.append((r, image_path, mask_path, note))
        with self.store.session() as s:
            for r, image_path, mask_path, note in rows:
                name, start, end = self.config.shifts.shift_at(dt.datetime.fromtimestamp(r.timestamp, dt.timezone.utc))
                key = (name, start)
                if key not in self._shift_cache:
                    self._shift_cache[key] = shift_id(s, name, start, end)
                row = inspection_row(r, shift_id=self._shift_cache[key], model_version_id=self.model_version_id,
                                     image_path=image_path, mask_path=mask_path)
                row.error = note
                s.add(row)
            s.commit()
        with self._lock:
            self._recorded += len(batch)
        if image_error is not None:
            self._report(image_error)
