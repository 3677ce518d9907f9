"""The writer thread: the one place inspections are written to SQLite and the image folder.

Results arrive on a bounded queue; the writer saves a batch's images first, then commits the
batch's rows in one transaction (commits per second, not rows, are SQLite's limit). A row thus
never points at a missing image. A full queue blocks the inspection worker: results are never dropped.
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

_STOP = object()


class ResultWriter:
    def __init__(self, store: Store, config: Config, recipe: Recipe, model_version_id: int,
                 on_error: Callable[[Exception], None] | None = None) -> None:
        self.store = store
        self.images = ImageStore(store)
        self.config = config
        self.recipe = recipe
        self.model_version_id = model_version_id
        self.on_error = on_error
        self._queue: queue.Queue[object] = queue.Queue(maxsize=4 * config.commit_batch)
        self._thread: threading.Thread | None = None
        self._recorded = 0
        self._ok_seen = 0
        self._unwritten = 0
        self._lock = threading.Lock()
        self._shift_cache: dict[tuple[str, object], int] = {}

    @property
    def recorded(self) -> int:
        """Rows committed so far."""
        with self._lock:
            return self._recorded

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="lepton-writer", daemon=True)
        self._thread.start()

    def put(self, result: InspectionResult) -> None:
        self._queue.put(result)

    def close(self) -> None:
        """Commit everything queued, then end the thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None

    def _keep_image(self, result: InspectionResult) -> bool:
        if result.verdict is not Verdict.OK:
            return True
        every = self.recipe.save_ok_every
        self._ok_seen += 1
        return every > 0 and (self._ok_seen - 1) % every == 0

    @property
    def unwritten(self) -> int:
        """Results that could not be written even after retrying (a full disk, a broken database)."""
        with self._lock:
            return self._unwritten

    def _loop(self) -> None:
        pending: list[InspectionResult] = []  # a batch whose commit failed, retried first
        failures = 0
        stopping = False
        while not stopping or pending:
            batch, pending = pending, []
            deadline = time.monotonic() + self.config.commit_interval_s
            while not stopping and len(batch) < self.config.commit_batch:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                else:
                    batch.append(item)  # type: ignore[arg-type]
            if not batch:
                continue
            try:
                self._write(batch)
                failures = 0
            except Exception as exc:  # a full disk, a locked database: report and retry the batch
                failures += 1
                self._shift_cache.clear()
                log.error("writing %d inspections failed (try %d): %s", len(batch), failures, exc)
                if self.on_error is not None:
                    self.on_error(exc)
                if stopping and failures >= 3:
                    with self._lock:
                        self._unwritten += len(batch)
                    log.error("%d inspections could not be written and are lost", len(batch))
                else:
                    pending = batch
                    time.sleep(min(1.0, 0.1 * failures))

    def _write(self, batch: list[InspectionResult]) -> None:
        paths = []
        for r in batch:
            paths.append(self.images.save(r) if self._keep_image(r) else (None, None))
        with self.store.session() as s:
            for r, (image_path, mask_path) in zip(batch, paths):
                name, start, end = self.config.shifts.shift_at(dt.datetime.fromtimestamp(r.timestamp, dt.timezone.utc))
                key = (name, start)
                if key not in self._shift_cache:
                    self._shift_cache[key] = shift_id(s, name, start, end)
                s.add(inspection_row(r, shift_id=self._shift_cache[key], model_version_id=self.model_version_id,
                                     image_path=image_path, mask_path=mask_path))
            s.commit()
        with self._lock:
            self._recorded += len(batch)

