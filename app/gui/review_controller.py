"""The engineers' side of the window, off the GUI thread: review queries and thumbnails, a part's
images and label history, saving relabels, training a candidate (a child process at the lowest
priority with one thread, so the line keeps its cores and Cancel is immediate), the comparison of
candidate and current model, promotion and rollback.

Queries and writes run in order on one worker thread of its own (the line's worker never waits
behind a review page); results come back as signals on the GUI thread. A newer page request makes
an older one's result stale: it is dropped, not shown.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from app.gui.controller import LineController, run_job
from inspection.access.users import Permission, User, require
from inspection.engineering import model_registry, review
from inspection.engineering.relabel import relabel
from inspection.engineering.review import LabelRow, PartImages, ReviewFilter, ReviewRow
from inspection.errors import ConfigError, PermissionDenied
from inspection.record.store import Store
from inspection.settings.config import data_dir

log = logging.getLogger(__name__)

PAGE_SIZE = 48
THUMB_HEIGHT = 72
THUMB_CACHE = 2000


@dataclasses.dataclass(frozen=True)
class ReviewPage:
    request: int
    filter: ReviewFilter
    offset: int
    total: int
    rows: tuple[tuple[ReviewRow, np.ndarray | None], ...]  # with an RGB thumbnail (None: no image kept)


@dataclasses.dataclass(frozen=True)
class ReviewPart:
    row: ReviewRow
    images: PartImages | None  # None: the image was not kept or cannot be read
    history: tuple[LabelRow, ...]
    classes: tuple[str, ...]  # the defect classes to pick from
    message: str = ""


@dataclasses.dataclass(frozen=True)
class ModelsState:
    recipe: str
    running: str  # the model the open line runs: name vVersion (sha12)
    promotions: tuple[model_registry.Promotion, ...]  # newest first
    candidates: tuple[tuple[Path, dict[str, Any] | None], ...]  # newest first, each with its comparison
    can_roll_back: bool


class ReviewController(QObject):
    page_loaded = Signal(object)  # ReviewPage
    part_loaded = Signal(object)  # ReviewPart
    saved = Signal(str)  # part id, after a relabel was recorded
    shifts_loaded = Signal(object)  # [(shift id, text)], newest first
    models_loaded = Signal(object)  # ModelsState
    training_progress = Signal(str, int, int)  # stage, step, steps
    training_finished = Signal(str, str)  # candidate path ("" if none), message
    exported = Signal(str)  # a sentence on what was written
    model_changed = Signal(str)  # after a promotion or rollback: the line must reopen to load it
    failed = Signal(str)  # one sentence
    busy = Signal(str)

    def __init__(self, line: LineController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.line = line
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._request = 0
        self._thumbs: OrderedDict[tuple[str, str | None, Path | None], np.ndarray | None] = OrderedDict()
        self._train: subprocess.Popen[str] | None = None
        self._cancelled = False
        self._worker = threading.Thread(target=self._work, name="lepton-gui-review", daemon=True)
        self._worker.start()

    # -- plumbing --------------------------------------------------------------------------
    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                run_job("Review", job, self.failed)
            finally:
                self.busy.emit("")

    def _spawn(self, what: str, job: Callable[[], None]) -> None:
        self.busy.emit(what)
        self._jobs.put(job)

    def _store(self) -> Store:
        """(worker) The open line's store."""
        line = self.line.line
        if line is None:
            raise ConfigError("The station is not open yet; wait until the line is ready.")
        return line.store

    def close(self) -> None:
        """Cancel a training and end the worker after its current job (never waited for here)."""
        self.cancel_training()
        self._jobs.put(None)

    # -- review ------------------------------------------------------------------------------
    def load_shifts(self) -> None:
        def job() -> None:
            from inspection.reports.figures import list_shifts

            line = self.line.line
            tz = line.config.shifts.tz if line is not None else None
            rows = []
            for s in list_shifts(self._store())[:60]:
                start = s["start_utc"].replace(tzinfo=dt.UTC)
                start = start.astimezone(tz) if tz else start
                rows.append((s["id"], f"{s['name']} {start:%Y-%m-%d %H:%M} ({s['inspected']} parts)"))
            self.shifts_loaded.emit(rows)

        self._spawn("Reading the shifts", job)

    @property
    def latest_request(self) -> int:
        return self._request

    def load_page(self, f: ReviewFilter, offset: int = 0) -> int:
        """Ask for a page; returns the request number its result will carry."""
        self._request += 1
        request = self._request

        def job() -> None:
            if request != self._request:
                return  # a newer request is queued: skip the work
            store = self._store()
            total = review.count_parts(store, f)
            rows = review.page(store, f, offset, PAGE_SIZE)
            out = tuple((r, self._thumbnail(r)) for r in rows)
            if request == self._request:
                self.page_loaded.emit(ReviewPage(request, f, offset, total, out))

        self._spawn("Reading parts", job)
        return request

    def _thumbnail(self, row: ReviewRow) -> np.ndarray | None:
        key = (row.part_id, row.label, row.label_mask)  # a relabel makes a new thumbnail
        if key in self._thumbs:
            self._thumbs.move_to_end(key)
            return self._thumbs[key]
        thumb = review.thumbnail(row, THUMB_HEIGHT)
        if thumb is None:  # (not kept, or still on its way to the disk: not remembered)
            return None
        self._thumbs[key] = thumb
        while len(self._thumbs) > THUMB_CACHE:
            self._thumbs.popitem(last=False)
        return thumb

    def load_part(self, part_id: str) -> None:
        def job() -> None:
            store = self._store()
            row = review.part(store, part_id)
            images = review.load_part_images(row)
            line = self.line.line
            classes = (line.recipe.defect_classes or line.inspector.info.classes) if line is not None else ()
            self.part_loaded.emit(
                ReviewPart(
                    row,
                    images,
                    tuple(review.history(store, part_id)),
                    tuple(classes),
                    "" if images is not None else f"The image of part {part_id} was not kept or cannot be read.",
                )
            )

        self._spawn("Loading the part", job)

    def relabel(
        self, part_id: str, verdict: str, *, user: User, classes: tuple[str, ...], mask: np.ndarray | None, comment: str
    ) -> None:
        mask = None if mask is None else mask.copy()

        def job() -> None:
            relabel(
                self._store(),
                part_id,
                verdict,
                user=user,
                classes=classes,
                mask=mask if mask is not None and mask.any() else None,
                comment=comment,
            )
            self.saved.emit(part_id)

        self._spawn("Saving the label", job)

    def export(self, folder: Path, user: User) -> None:
        """The labelled parts as a dataset in `folder` (project format, MVTec AD layout under mvtec/)."""

        def job() -> None:
            from inspection.engineering.dataset_export import export_dataset
            from inspection.record.opening import open_record

            require(self._store(), user, Permission.EXPORT_DATASET)
            with open_record(self._store().path, read_only=True) as record:
                summary = export_dataset(record, folder)
            self.exported.emit(
                f"Wrote {summary.parts} labelled parts ({summary.good} OK, {summary.defect} NG) to {folder}"
                + (f"; {summary.without_image} left out: their images were not kept." if summary.without_image else ".")
            )

        self._spawn("Exporting the labelled parts", job)

    # -- models ------------------------------------------------------------------------------
    def load_models(self) -> None:
        def job() -> None:
            from inspection.engineering.retraining import list_candidates

            line = self.line.line
            if line is None:
                raise ConfigError("The station is not open yet; wait until the line is ready.")
            info = line.inspector.info
            self.models_loaded.emit(
                ModelsState(
                    line.recipe.name,
                    f"{info.name} v{info.version} ({info.sha256[:12]})",
                    tuple(model_registry.history(line.store, line.recipe.name)),
                    tuple(list_candidates(line.recipe.name)),
                    model_registry.can_roll_back(line.store, line.recipe.name),
                )
            )

        self._spawn("Reading the models", job)

    @property
    def training(self) -> bool:
        return self._train is not None

    def train_candidate(self, user: User, device: str = "auto") -> None:
        """Start `lepton-inspect train --from-db` for the open line's recipe as a child process
        (lowest priority, one thread), once the user's permission is checked on the worker;
        `training_finished` always follows, also when it cannot start."""
        self._cancelled = False
        self._spawn("Starting the training", lambda: self._start_training(user, device))

    def _start_training(self, user: User, device: str) -> None:
        line = self.line.line
        if self._train is not None:
            self.training_finished.emit("", "A training is already running.")
            return
        if line is None:
            self.training_finished.emit("", "The station is not open yet; wait until the line is ready.")
            return
        try:
            require(line.store, user, Permission.TRAIN)
        except PermissionDenied as exc:
            self.training_finished.emit("", str(exc))
            return
        cmd = [
            sys.executable,
            "-m",
            "app",
            "train",
            "--from-db",
            str(line.store.path.resolve()),
            "--beside-line",
            "--progress-json",
            "--device",
            device,
        ]
        if self.line.recipe is not None:
            cmd += ["--recipe", str(Path(self.line.recipe).resolve())]
        env = dict(os.environ)
        env["LEPTON_DATA_DIR"] = str(
            data_dir().resolve()
        )  # the same candidates folder whatever the child's working folder
        errors = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        try:
            self._train = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors, text=True, env=env)
        except OSError as exc:
            errors.close()
            self.training_finished.emit("", f"The training could not start: {exc.strerror or exc}.")
            return
        if self._cancelled:  # Cancel came while the permission was checked
            self._train.terminate()
        threading.Thread(target=self._follow, args=(self._train, errors), name="lepton-gui-train", daemon=True).start()

    def _follow(self, proc: subprocess.Popen[str], errors: Any) -> None:
        done, rc, text = "", None, ""
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                try:
                    msg = json.loads(line)
                    if "done" in msg:
                        done = str(msg["done"])
                    elif "stage" in msg:
                        self.training_progress.emit(str(msg["stage"]), int(msg["i"]), int(msg["n"]))
                except (ValueError, TypeError, KeyError):
                    continue  # not a progress line
            rc = proc.wait()
            errors.seek(0)
            text = errors.read()
        except Exception:
            log.exception("following the training process failed")
            proc.kill()
            rc = proc.wait()
        finally:
            errors.close()
            self._train = None
        lines = [x for x in text.splitlines() if x.startswith("error: ")]
        if rc == 0 and done:  # (also when Cancel came too late: the candidate is there)
            self.training_finished.emit(done, "Candidate trained and compared with the current model.")
        elif self._cancelled:
            self.training_finished.emit("", "Training cancelled; no candidate was written.")
        else:
            log.error("training process ended with exit code %s:\n%s", rc, text[-4000:])
            self.training_finished.emit(
                "",
                lines[-1][7:]
                if lines
                else f"The training stopped unexpectedly (exit code {rc}; details in the log file).",
            )

    def cancel_training(self) -> None:
        proc = self._train
        self._cancelled = True
        if proc is not None:
            proc.terminate()  # the child unwinds: its exported labels and any partial candidate are removed

    def promote(self, candidate: Path, user: User, comment: str = "") -> None:
        def change(store: Any, recipe: Any) -> model_registry.Promotion:
            comparison = _comparison(candidate)  # (a file: read on the worker, like everything else)
            if comparison is None:
                raise ConfigError(
                    "This candidate has no comparison with the current model; train a new one to promote."
                )
            return model_registry.promote(store, recipe, candidate, user=user, comment=comment, evaluation=comparison)

        self._change_model(change, "Promoting the candidate")

    def rollback(self, user: User, comment: str = "") -> None:
        self._change_model(
            lambda store, recipe: model_registry.rollback(store, recipe, user=user, comment=comment), "Rolling back"
        )

    def _change_model(self, change: Callable[[Any, Any], model_registry.Promotion], what: str) -> None:
        if self.line.model_pinned:
            self.failed.emit(
                "The window was started with --model: that model runs whatever is promoted; restart it without --model."
            )
            return
        if self._train is not None:
            self.failed.emit("Wait for the training to finish (or cancel it) before changing the model.")
            return

        def job() -> None:
            from inspection.record.opening import open_record
            from inspection.settings.recipe import load_recipe

            if self.line.running:  # checked again here: Start may have been pressed since
                raise ConfigError("Stop the line before changing its model.")
            line = self.line.line
            if line is not None:
                p = change(line.store, line.recipe)
            else:  # the line could not open (say, on a model that does not fit): the record is ours to open
                with open_record(self.line.db) as store:
                    p = change(store, load_recipe(self.line.recipe))
            self.model_changed.emit(f"Recipe {p.recipe} now runs {p.model}.")

        self._spawn(what, job)


def _comparison(candidate: Path) -> dict[str, Any] | None:
    from inspection.engineering.retraining import read_comparison

    return read_comparison(candidate)
