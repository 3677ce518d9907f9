"""The record: a SQLite file (WAL) through SQLAlchemy, migrated by Alembic, plus an image folder.

One `Store` per database per process; a lock file keeps a second instance of the program off the
same database. The writer thread alone writes inspections (see inspection.writer); other threads
may read through `session()`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from filelock import FileLock, Timeout
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from inspection.errors import StoreError
from inspection.result import InspectionResult, Verdict
from inspection.schema import Event, Inspection, ModelVersion, Relabel, Run, Shift
from models.base import ModelInfo

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 5000


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def from_epoch(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).replace(tzinfo=None)


def _set_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _migrate(engine: Engine) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Store:
    """An open database and its image folder. Use `open_store()`."""

    def __init__(self, path: Path, engine: Engine, lock: FileLock | None) -> None:
        self.path = path
        self.engine = engine
        self._lock = lock  # None: opened read-only, beside a running station
        self.images_dir = path.parent / f"{path.stem}-images"
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as s:
            yield s

    def close(self) -> None:
        self.engine.dispose()
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- setup rows --------------------------------------------------------------------
    def model_version(self, info: ModelInfo) -> int:
        """The id of a model version, added on first use."""
        with self.session() as s:
            row = s.scalar(select(ModelVersion).where(ModelVersion.sha256 == info.sha256))
            if row is None:
                row = ModelVersion(
                    name=info.name, version=info.version, kind=info.kind, sha256=info.sha256,
                    thresholds_json=json.dumps(info.thresholds.__dict__),
                    metadata_json=json.dumps(info.metadata, sort_keys=True, default=str),
                    first_used_at=utcnow(),
                )
                s.add(row)
                s.add(Event(ts=utcnow(), level="info", kind="model", message=f"Model {info.name} v{info.version} ({info.sha256[:12]}) first recorded."))
                s.commit()
            return row.id

    def start_run(self, *, line: str, station: str, camera_spec: str, recipe: str, model_version_id: int, software_version: str,
                  ok_below: float | None = None, ng_at: float | None = None) -> int:
        with self.session() as s:
            last = s.scalar(select(Run).order_by(Run.id.desc()).limit(1))
            run = Run(started_at=utcnow(), line=line, station=station, camera_spec=camera_spec, recipe=recipe,
                      model_version_id=model_version_id, software_version=software_version, ok_below=ok_below, ng_at=ng_at)
            s.add(run)
            s.flush()
            if last is not None and last.model_version_id != model_version_id:
                old, new = s.get(ModelVersion, last.model_version_id), s.get(ModelVersion, model_version_id)
                s.add(Event(ts=utcnow(), run_id=run.id, level="info", kind="model",
                            message=f"Model changed from {old.name} v{old.version} ({old.sha256[:12]}) to {new.name} v{new.version} ({new.sha256[:12]})."))
            if last is not None and last.ng_at is not None and (last.ok_below, last.ng_at) != (ok_below, ng_at):
                s.add(Event(ts=utcnow(), run_id=run.id, level="info", kind="thresholds",
                            message=f"Thresholds changed from OK below {last.ok_below:.4g} / NG at {last.ng_at:.4g} "
                                    f"to OK below {ok_below:.4g} / NG at {ng_at:.4g} (recipe {recipe})."))
            s.add(Event(ts=utcnow(), run_id=run.id, level="info", kind="run", message=f"Run {run.id} started on {camera_spec} with recipe {recipe}."))
            s.commit()
            return run.id

    def end_run(self, run_id: int, state: str, message: str, *, dropped_frames: int | None = None, failed_grabs: int | None = None) -> None:
        with self.session() as s:
            run = s.get(Run, run_id)
            if run is not None:
                run.ended_at = utcnow()
                run.end_state = state
                run.end_message = message
                run.dropped_frames = dropped_frames
                run.failed_grabs = failed_grabs
            s.add(Event(ts=utcnow(), run_id=run_id, level="warning" if state == "faulted" else "info", kind="run", message=message))
            s.commit()

    def relabel(self, part_id: str, verdict: str, *, who: str, classes: tuple[str, ...] = (), mask: np.ndarray | None = None,
                comment: str = "") -> int:
        """Record an engineer's judgement of a part (OK or NG, classes, optionally a mask) as a new
        row; the model's verdict is never touched. Returns the relabel's id."""
        if verdict not in ("OK", "NG"):
            raise StoreError(f"A relabel's verdict is OK or NG, not {verdict!r}: a person decides.")
        if not who.strip():
            raise StoreError("A relabel needs the name of who made it.")
        if verdict == "OK" and classes:
            raise StoreError("A part relabelled OK has no defect classes.")
        with self.session() as s:
            part = s.scalar(select(Inspection).where(Inspection.part_id == part_id))
            if part is None:
                raise StoreError(f"The database {self.path} has no part {part_id}.")
            latest = s.scalar(select(Relabel).where(Relabel.inspection_id == part.id).order_by(Relabel.id.desc()).limit(1))
            mask_rel = None
            if mask is not None:
                folder = self.images_dir / "relabels"
                folder.mkdir(parents=True, exist_ok=True)
                n = s.scalar(select(func.count()).select_from(Relabel).where(Relabel.inspection_id == part.id)) or 0
                mask_file = folder / f"{part_id}_relabel{n + 1}_mask.png"
                _write_png(mask_file, mask.astype(np.uint8) * 255 if mask.dtype == bool else mask.astype(np.uint8))
                mask_rel = str(mask_file.relative_to(self.path.parent))
            row = Relabel(inspection_id=part.id, at=utcnow(), who=who.strip(), previous_verdict=latest.verdict if latest else part.verdict,
                          verdict=verdict, classes_json=json.dumps(list(classes)), mask_path=mask_rel, comment=comment)
            s.add(row)
            s.commit()
            return row.id

    def end_dangling_runs(self) -> int:
        """Runs left without an end by a crash or a kill end at their last inspection (else their start):
        reports would otherwise count them as production for ever. Returns how many."""
        with self.session() as s:
            runs = s.scalars(select(Run).where(Run.ended_at.is_(None))).all()
            for run in runs:
                last = s.scalar(select(func.max(Inspection.ts)).where(Inspection.run_id == run.id))
                run.ended_at = last or run.started_at
                run.end_state = "crashed"
                run.end_message = f"Run {run.id} ended without a stop (the program was killed or crashed); its end is its last inspection."
                s.add(Event(ts=utcnow(), run_id=run.id, level="warning", kind="run", message=run.end_message))
            s.commit()
            return len(runs)

    def log_event(self, kind: str, message: str, *, level: str = "info", run_id: int | None = None) -> None:
        with self.session() as s:
            s.add(Event(ts=utcnow(), run_id=run_id, level=level, kind=kind, message=message))
            s.commit()

    # -- reading -------------------------------------------------------------------------
    def counts(self, run_id: int | None = None) -> dict[str, int]:
        """Parts per verdict (and in all), over one run or the whole record."""
        q = select(Inspection.verdict, func.count()).group_by(Inspection.verdict)
        if run_id is not None:
            q = q.where(Inspection.run_id == run_id)
        with self.session() as s:
            rows = dict(s.execute(q).all())
        out = {v.value.lower(): int(rows.get(v.value, 0)) for v in Verdict}
        out["parts"] = sum(out.values())
        return out


def open_store(path: str | Path) -> Store:
    """Open (creating and migrating as needed) the database at `path`; one sentence if it cannot."""
    path = Path(path).expanduser().resolve()
    if path.is_dir():
        raise StoreError(f"The database path {path} is a folder; give a file name such as {path / 'lepton.db'}.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"Cannot create the database folder {path.parent}: {exc.strerror}.") from None
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise StoreError(f"The database path {path} is not writable.")
    # Not thread-local: a store opened on one thread (the GUI's worker) is closed on another (the GUI's).
    lock = FileLock(str(path) + ".lock", thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise StoreError(f"The database {path} is in use by another Lepton Inspect instance.") from None
    except OSError as exc:
        raise StoreError(f"Cannot lock the database {path}: {exc.strerror}.") from None
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})
    event.listen(engine, "connect", _set_pragmas)
    from alembic.util import CommandError

    try:
        _migrate(engine)
    except (DatabaseError, OperationalError, CommandError) as exc:
        engine.dispose()
        lock.release()
        if isinstance(exc, CommandError):
            raise StoreError(f"The database {path} was written by a newer Lepton Inspect ({exc}).") from None
        reason = str(exc.orig) if getattr(exc, "orig", None) is not None else str(exc)
        raise StoreError(f"The database {path} cannot be opened ({reason}).") from None
    store = Store(path, engine, lock)
    try:
        store.end_dangling_runs()
    except (DatabaseError, OperationalError) as exc:
        store.close()
        raise StoreError(f"The database {path} cannot be written ({exc.orig if getattr(exc, 'orig', None) else exc}).") from None
    return store


def open_record(path: str | Path) -> Store:
    """Open a database read-only, without its lock, beside a station that may be writing it (WAL):
    for reports and listings. One sentence if it is missing or was never brought up to date."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise StoreError(f"There is no database at {path}.")
    engine = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true",
                           connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})
    event.listen(engine, "connect", _set_read_pragmas)
    from alembic.script import ScriptDirectory
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    try:
        with engine.connect() as conn:
            version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except (DatabaseError, OperationalError) as exc:
        engine.dispose()
        reason = str(exc.orig) if getattr(exc, "orig", None) is not None else str(exc)
        raise StoreError(f"The database {path} cannot be read ({reason}).") from None
    if version != head:
        engine.dispose()
        raise StoreError(f"The database {path} is at schema {version}, this program reads {head}: open it once with the station to update it.")
    return Store(path, engine, None)


def _set_read_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.close()


class ImageStore:
    """Writes part images and masks as PNG under the store's image folder; paths are relative to the DB."""

    def __init__(self, store: Store) -> None:
        self.root = store.images_dir
        self.base = store.path.parent

    def save(self, result: InspectionResult) -> tuple[str, str | None]:
        day = from_epoch(result.timestamp).strftime("%Y%m%d")
        folder = self.root / day
        folder.mkdir(parents=True, exist_ok=True)
        image_path = folder / f"{result.part_id}.png"
        image = result.image
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
        _write_png(image_path, bgr)
        mask_rel = None
        if result.defect_mask.any():
            mask_path = folder / f"{result.part_id}_mask.png"
            _write_png(mask_path, result.defect_mask.astype(np.uint8) * 255)
            mask_rel = str(mask_path.relative_to(self.base))
        return str(image_path.relative_to(self.base)), mask_rel


def _write_png(path: Path, array: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", array, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise StoreError(f"Cannot encode image {path.name} as PNG.")
    try:
        path.write_bytes(buf.tobytes())
    except OSError as exc:
        raise StoreError(f"Cannot write image {path}: {exc.strerror}.") from None


def inspection_row(result: InspectionResult, *, shift_id: int, model_version_id: int, image_path: str | None, mask_path: str | None) -> Inspection:
    t = result.timing
    return Inspection(
        part_id=result.part_id, run_id=result.run_id, seq=result.seq, ts=from_epoch(result.timestamp), shift_id=shift_id,
        camera_id=result.camera_id, frame_id=result.frame_id, recipe=result.recipe, model_version_id=model_version_id,
        score=None if result.score != result.score else result.score, verdict=result.verdict.value,
        classes_json=json.dumps([c.name for c in result.classes]),
        areas_json=json.dumps({c.name: c.area_px for c in result.classes}),
        image_path=image_path, mask_path=mask_path,
        t_grab_ms=t.grab_ms, t_queue_ms=t.queue_ms, t_preprocess_ms=t.preprocess_ms, t_infer_ms=t.infer_ms,
        t_decide_ms=t.decide_ms, latency_ms=t.total_ms, error=result.error or None,
    )


def shift_id(session: Session, name: str, start: dt.datetime, end: dt.datetime) -> int:
    """The id of a shift instance, added on first use (times aware UTC)."""
    start_n, end_n = start.replace(tzinfo=None), end.replace(tzinfo=None)
    row = session.scalar(select(Shift).where(Shift.start_at == start_n, Shift.name == name))
    if row is None:
        row = Shift(name=name, start_at=start_n, end_at=end_n)
        session.add(row)
        session.flush()
    return row.id

