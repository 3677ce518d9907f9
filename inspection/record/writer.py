"""The writer: the one place inspections are written to SQLite and the image folder.

Results arrive on a bounded queue. The writer thread commits a batch's rows in one transaction
(commits per second, not rows, are SQLite's limit) and only then hands the batch's images to the
image thread, which writes them as PNG. So a verdict's row is committed within the commit interval
of its publication, whatever the disk does with images; a `kill -9` can leave rows whose image was
not yet written, which the next start marks missing (`reconcile.end_dangling_runs`). Every row is
written whether its image can be or not: below the free-space floor, or when a PNG write fails (a
full disk), the row's `image_status` says `missing` and the line goes on.

A full result queue blocks the inspection worker: results are never dropped. A batch of rows that
still fails after a few tries is counted as unwritten and reported through `on_error` (the runner
then faults the line: a station that cannot record must not inspect).
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable

from sqlalchemy import update

from inspection.priority import background_thread
from inspection.record.images import ImageStore
from inspection.record.schema import Inspection
from inspection.record.store import Store, inspection_row, shift_id
from inspection.result import InspectionResult, Verdict
from inspection.settings.config import Config
from inspection.settings.recipe import Recipe

log = logging.getLogger(__name__)

MAX_TRIES = 3
IMAGE_QUEUE = (
    64  # images waiting for the disk; beyond this the inspection thread waits in put() (never the rows' commits)
)
MISSING = "missing"  # inspections.image_status: the image was to be kept but is not on disk
_IDLE = object()  # the image queue stayed empty for a while


class ResultWriter:
    def __init__(
        self,
        store: Store,
        config: Config,
        recipe: Recipe,
        model_version_id: int,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.store = store
        self.images = ImageStore(store)
        self.config = config
        self.recipe = recipe
        self.model_version_id = model_version_id
        self.on_error = on_error
        self.min_free_mb = config.alarms.min_free_disk_mb  # below this no image is saved (the low-disk alarm's limit)
        self._queue: queue.Queue[tuple[InspectionResult, bool]] = queue.Queue(maxsize=4 * config.commit_batch)
        self._image_queue: queue.Queue[tuple[InspectionResult, str, str | None] | None] = queue.Queue()
        self._image_slots = threading.Semaphore(IMAGE_QUEUE)  # images kept and not yet written (bounds the image queue)
        self._thread: threading.Thread | None = None
        self._image_thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._recorded = 0
        self._unwritten = 0
        self._images_missing = 0
        self._image_error = ""
        self._ok_seen = 0  # good parts so far
        self._keep_part = False  # whether the current part's images are kept
        self._commit_s = 0.0  # time spent building and committing rows, for the benchmark's cost per row
        self._lock = threading.Lock()
        self._shift_cache: dict[tuple[str, object], int] = {}

    @property
    def recorded(self) -> int:
        """Rows committed so far."""
        with self._lock:
            return self._recorded

    @property
    def unwritten(self) -> int:
        """Results that could not be written even after retrying (a broken database, a disk too full for rows)."""
        with self._lock:
            return self._unwritten

    @property
    def commit_ms_per_row(self) -> float:
        """The writer thread's time per committed row (building the rows and the transaction's commit)."""
        with self._lock:
            return self._commit_s * 1000 / self._recorded if self._recorded else 0.0

    @property
    def images_missing(self) -> tuple[int, str]:
        """Images that were to be kept but could not be (their rows say `missing`), and the last reason."""
        with self._lock:
            return self._images_missing, self._image_error

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="lepton-writer", daemon=True)
        self._image_thread = threading.Thread(target=self._image_loop, name="lepton-images", daemon=True)
        self._thread.start()
        self._image_thread.start()

    def put(self, result: InspectionResult) -> None:
        """Queue a result (blocks while the queue is full, or while IMAGE_QUEUE kept images wait for
        the disk: the inspection thread waits, never the commits of rows already queued). Whether
        its image is kept is decided here, once, in the order parts were inspected."""
        keep = self._keep_image(result)
        if keep:
            self._image_slots.acquire()
        self._queue.put((result, keep))

    def close(self) -> None:
        """Write everything queued (rows, then images), then end the threads."""
        if self._thread is None:
            return
        self._closing.set()
        self._thread.join()
        self._thread = None
        self._image_queue.put(None)
        assert self._image_thread is not None
        self._image_thread.join()
        self._image_thread = None

    def _keep_image(self, result: InspectionResult) -> bool:
        """Decided per part: every view of a rejected part is kept (the evidence), and every view
        of one good part in save_ok_every. A part's views are put one after another, the first
        (view 0) first."""
        if result.view == 0:
            if (result.part_verdict or result.verdict) is not Verdict.OK:
                self._keep_part = True
            else:
                every = self.recipe.save_ok_every
                self._ok_seen += 1
                self._keep_part = every > 0 and (self._ok_seen - 1) % every == 0
        return self._keep_part

    # -- rows (the writer thread) ---------------------------------------------------------
    def _next_batch(self) -> list[tuple[InspectionResult, bool]]:
        """Up to commit_batch results, collected for at most half the commit interval from the
        first one's arrival: the other half is the commit's, so that a row is committed within one
        interval of its verdict."""
        batch: list[tuple[InspectionResult, bool]] = []
        deadline = float("inf")
        while len(batch) < self.config.commit_batch:
            wait = 0.05 if not batch else max(0.0, min(0.05, deadline - time.monotonic()))
            try:
                batch.append(self._queue.get(timeout=wait))
            except queue.Empty:
                if time.monotonic() >= deadline or self._closing.is_set():
                    break
                continue
            if len(batch) == 1:
                deadline = time.monotonic() + self.config.commit_interval_s / 2
        return batch

    def _loop(self) -> None:
        background_thread()
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
                    images = self._write(batch)
                    failing = False
                except Exception as exc:  # a locked or broken database, a disk too full for rows
                    self._shift_cache.clear()
                    log.error("writing %d inspections failed (try %d of %d): %s", len(batch), attempt, tries, exc)
                    if attempt == tries:
                        failing = True
                        with self._lock:
                            self._unwritten += len(batch)
                        self._report(exc)
                    else:
                        time.sleep(0.2 * attempt)
                    continue
                for item in images:  # committed: now the images (a slot each was taken in put())
                    self._image_queue.put(item)
                break
            else:  # the rows could not be written: nor will their images be
                for _, keep in batch:
                    if keep:
                        self._image_slots.release()

    def _report(self, exc: Exception) -> None:
        if self.on_error is not None:
            try:
                self.on_error(exc)
            except Exception:
                log.exception("write-error handler failed")

    def _room_for_images(self) -> bool:
        try:
            return shutil.disk_usage(self.images.base).free >= self.min_free_mb * 2**20
        except OSError:
            return True  # the write itself will say what is wrong

    def _write(self, batch: list[tuple[InspectionResult, bool]]) -> list[tuple[InspectionResult, str, str | None]]:
        """Commit the batch's rows; return the images still to write."""
        images: list[tuple[InspectionResult, str, str | None]] = []
        room = any(keep for _, keep in batch) and self._room_for_images()
        skipped = 0
        t0 = time.perf_counter()
        with self.store.session() as s:
            for r, keep in batch:
                name, start, end = self.config.shifts.shift_at(dt.datetime.fromtimestamp(r.timestamp, dt.UTC))
                key = (name, start)
                if key not in self._shift_cache:
                    self._shift_cache[key] = shift_id(s, name, start, end)
                image_path = mask_path = status = None
                if keep and room:
                    image_path, mask_path = self.images.paths(r)
                    images.append((r, image_path, mask_path))
                elif keep:
                    status, skipped = MISSING, skipped + 1
                row = inspection_row(
                    r,
                    shift_id=self._shift_cache[key],
                    model_version_id=self.model_version_id,
                    image_path=image_path,
                    mask_path=mask_path,
                )
                row.image_status = status
                s.add(row)
            s.commit()
        for _ in range(skipped):  # (released once committed: a failed try keeps its slots for the next)
            self._image_slots.release()
        with self._lock:
            self._commit_s += time.perf_counter() - t0
            self._recorded += len(batch)
            if skipped:
                self._images_missing += skipped
                self._image_error = f"less than {self.min_free_mb} MB free on the disk of {self.images.base}"
        return images

    # -- images (the image thread) ----------------------------------------------------------
    def _image_loop(self) -> None:
        background_thread()
        failed: list[str] = []  # parts whose image failed, still to be marked in their rows
        while True:
            try:
                item: tuple[InspectionResult, str, str | None] | object | None = self._image_queue.get(timeout=0.5)
            except queue.Empty:
                item = _IDLE
            if isinstance(item, tuple):
                r, image_path, mask_path = item
                try:
                    self.images.write(r, image_path, mask_path)
                except Exception as exc:  # a full disk: the row stays, its image is marked missing
                    log.error("image of part %s not saved: %s", r.part_id, exc)
                    failed.append(r.part_id)
                    with self._lock:
                        self._images_missing += 1
                        self._image_error = str(exc)
                finally:
                    self._image_slots.release()
            if failed and (not isinstance(item, tuple) or len(failed) >= 64 or self._image_queue.empty()):
                failed = self._mark_missing(failed)
            if item is None:
                return

    def _mark_missing(self, part_ids: list[str]) -> list[str]:
        """Say in their rows that these parts' images are not on disk; the ids still to mark."""
        try:
            with self.store.session() as s:
                s.execute(update(Inspection).where(Inspection.part_id.in_(part_ids)).values(image_status=MISSING))
                s.commit()
            return []
        except Exception as exc:  # the database is what fails: the next start's reconciliation marks them
            log.error("marking %d missing images failed: %s", len(part_ids), exc)
            return part_ids if len(part_ids) < 10_000 else []
