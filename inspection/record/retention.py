"""Image retention: a line runs for months, its disk does not grow.

A `Retention` thread beside the open line checks every `check_interval_s` whether the image folder is
above its limit (`max_image_mb`) or its disk below the free space to keep (`min_free_mb`). If so it
deletes part images, oldest first: good parts' images before any reject's, then rejects (NG and
REVIEW) older than `keep_rejects_days`. It never deletes a database row (the row's `image_status`
becomes `removed`), nor the images of parts an engineer labelled (they train the next model), nor
the engineers' masks. What it deleted is one event in the record per pass. When that is not enough
the disk alarm (inspection.runtime.alarms) tells the operator, and the writer stops saving images below the
alarm's limit while every part still gets its row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import ColumnElement, exists, select, update

from inspection.priority import background_thread
from inspection.record.schema import Event, Inspection, Relabel
from inspection.record.store import Store, utcnow
from inspection.settings.config import RetentionConfig

log = logging.getLogger(__name__)

REMOVED = "removed"  # inspections.image_status of an image the policy deleted
CHUNK = 500
RECENT_S = 10  # parts this young keep their images (the image thread may not have written them yet)
HEADROOM = 0.1  # a pass that must delete goes this share below the limit


@dataclasses.dataclass(frozen=True)
class RetentionPass:
    needed_bytes: int  # what the policy asked to free
    removed_images: int  # parts whose files were deleted
    freed_bytes: int
    short_bytes: int  # still to free when nothing more may be deleted (0: enough)


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under `folder` (its day folders and the engineers' masks)."""
    total = 0
    stack = [folder]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    elif e.is_file(follow_symlinks=False):
                        total += e.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total


class Retention:
    def __init__(self, store: Store, config: RetentionConfig, *, now: Callable[[], dt.datetime] = utcnow) -> None:
        self.store = store
        self.config = config
        self._now = now
        self._short = False  # the last pass could not free enough (said once, not every pass)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def needed_bytes(self) -> int:
        """How much the policy wants deleted now (0: nothing). Once over a limit it goes HEADROOM
        below it, so that a line at its limit is not trimmed a few images at every pass."""
        c = self.config
        base, folder = self.store.image_folders()
        need = 0
        if c.max_image_mb > 0:
            limit, used = c.max_image_mb * 2**20, folder_bytes(folder)
            if used > limit:
                need = int(used - (1 - HEADROOM) * limit)
        if c.min_free_mb > 0:
            try:
                free = shutil.disk_usage(folder if folder.is_dir() else base).free
            except OSError:
                free = None
            floor = c.min_free_mb * 2**20
            if free is not None and free < floor:
                need = max(need, int((1 + HEADROOM) * floor - free))
        return need

    def run_once(self) -> RetentionPass:
        """One pass: delete what the policy needs, good parts' images first. A chunk's rows are
        marked `removed` (and committed) before their files go: a kill between the two leaves files
        without a claim to them, never rows naming files that are gone."""
        need = self.needed_bytes()
        if need <= 0:
            self._short = False
            return RetentionPass(0, 0, 0, 0)
        cutoff = self._now() - dt.timedelta(days=self.config.keep_rejects_days)
        deletable = self._deletable()
        base, _ = self.store.image_folders()
        removed = freed = 0
        for where in ((Inspection.verdict == "OK",), (Inspection.verdict != "OK", Inspection.ts < cutoff)):
            after = 0
            while freed < need and not self._stop.is_set():
                rows = self._oldest(deletable, where, after)
                if not rows:
                    break
                files, after = _plan(rows, base, need - freed)
                claimed = self._claim(deletable, files)
                for row_id in claimed:
                    freed += sum(_delete(f) for f in files[row_id])
                removed += len(claimed)
        short = max(0, need - freed)
        self._tell(removed, freed, short)
        return RetentionPass(need, removed, freed, short)

    def _deletable(self) -> tuple[ColumnElement[bool], ...]:
        """What a part whose images may go is: it has an image still on disk, nobody labelled it,
        and it is not one of the last RECENT_S seconds' parts (their images may still be on their
        way to the disk)."""
        labelled = exists().where(Relabel.inspection_id == Inspection.id)
        return (
            Inspection.image_path.is_not(None),
            Inspection.image_status.is_(None),
            ~labelled,
            Inspection.ts < self._now() - dt.timedelta(seconds=RECENT_S),
        )

    def _oldest(
        self, deletable: tuple[ColumnElement[bool], ...], where: tuple[ColumnElement[bool], ...], after: int
    ) -> list[tuple[int, str | None, str | None]]:
        """The next CHUNK deletable parts matching `where`, after the id `after`: (id, image, mask)."""
        with self.store.session() as s:
            rows = s.execute(
                select(Inspection.id, Inspection.image_path, Inspection.mask_path)
                .where(*deletable, *where, Inspection.id > after)
                .order_by(Inspection.id)
                .limit(CHUNK)
            ).all()
        return [(row_id, image, mask) for row_id, image, mask in rows]

    def _claim(self, deletable: tuple[ColumnElement[bool], ...], files: dict[int, list[Path]]) -> list[int]:
        """Mark the planned parts' images `removed` (committed) if they are still unlabelled and not
        yet removed (an engineer may just have labelled one); the ids claimed."""
        with self.store.session() as s:
            claimed = s.scalars(
                update(Inspection)
                .where(Inspection.id.in_(list(files)), *deletable[1:3])
                .values(image_status=REMOVED)
                .returning(Inspection.id)
            ).all()
            s.commit()
        return list(claimed)

    def _tell(self, removed: int, freed: int, short: int) -> None:
        """Log a pass that deleted something, or that could not free enough (once, not every
        pass), and keep it as an event in the record."""
        message = (
            f"Image retention removed the images of {removed} parts ({freed / 2**20:.1f} MB), oldest first, "
            "good parts before rejects; their rows stay."
        )
        if short:
            message += (
                f" {short / 2**20:.1f} MB more should go, but only the images of rejects younger than "
                f"{self.config.keep_rejects_days} days, of labelled parts and of the last {RECENT_S} seconds' "
                "parts are left."
            )
        said, self._short = self._short, bool(short)
        if removed or (short and not said):
            log.warning("%s", message)
            with self.store.session() as s:
                s.add(Event(ts=utcnow(), level="warning" if short else "info", kind="retention", message=message))
                s.commit()

    # -- the thread ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="lepton-retention", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None

    def _loop(self) -> None:
        background_thread()
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the policy must never die: log and try again at the next check
                log.exception("image retention failed")
            self._stop.wait(self.config.check_interval_s)


def _plan(rows: list[tuple[int, str | None, str | None]], base: Path, need: int) -> tuple[dict[int, list[Path]], int]:
    """The files of the first rows that together free `need` bytes (all the rows if they do not),
    by row id, and the last row id planned."""
    files: dict[int, list[Path]] = {}
    planned = after = 0
    for row_id, image, mask in rows:
        after = row_id
        files[row_id] = [base / p for p in (image, mask) if p]
        planned += sum(_size(f) for f in files[row_id])
        if planned >= need:
            break
    return files, after


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _delete(path: Path) -> int:
    """Bytes freed; a file that will not go (in use, no permission) is logged and left."""
    try:
        size = path.stat().st_size
        path.unlink()
        return size
    except FileNotFoundError:
        return 0
    except OSError as exc:
        log.warning("image retention could not delete %s: %s", path, exc.strerror)
        return 0
