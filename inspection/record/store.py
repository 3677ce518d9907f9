"""The record: a SQLite file (WAL) through SQLAlchemy, migrated by Alembic, plus an image folder;
or a plant database on a PostgreSQL server (a `postgresql://` URL), migrated the same way, which
stations fill through their forwarders (inspection.record.forwarding). Opened by
`inspection.record.opening` (`open_record`, `open_station_record`).

One `Store` per database per process; a lock file keeps a second instance of the program off the
same SQLite file. The writer thread alone writes inspections (see inspection.record.writer); other
threads may read through `session()`. The store keeps rows; the rules about them (who may change
what, the audit trail) live above it, in inspection.access and the rooms that use it.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from filelock import FileLock
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from inspection.errors import StoreError
from inspection.record.schema import Event, Inspection, ModelVersion, Run, Shift
from inspection.result import InspectionResult, Verdict
from models.base import ModelInfo


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def from_epoch(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC).replace(tzinfo=None)


class Attachment(Protocol):
    """Something that works on an open record and stops before it closes (a station's forwarder)."""

    def close(self) -> None: ...


class Store:
    """An open database and its image folder (none on a server). Opened by `open_record()`."""

    def __init__(self, path: Path | None, engine: Engine, lock: FileLock | None, *, server: str | None = None) -> None:
        self.path = path  # None: a database server
        self.server = server  # the server's URL without its password (None: a SQLite file)
        self.engine = engine
        self._lock = lock  # None: opened read-only, beside a running station, or a server
        self.images_dir = path.parent / f"{path.stem}-images" if path is not None else None
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # Held from reading a table's last row to the commit by writes that chain to the row before
        # (the audit trail's hashes: inspection.access.audit).
        self.serial_lock = threading.RLock()
        self._attached: list[Attachment] = []

    @property
    def name(self) -> str:
        """The database as shown to people: the file's path, or the server's URL without its password."""
        return str(self.path) if self.path is not None else str(self.server)

    @property
    def image_base(self) -> Path | None:
        """The folder that image paths are relative to; None on a server (images stay at their station)."""
        return self.path.parent if self.path is not None else None

    def image_file(self, relative: str | None) -> Path | None:
        """A row's image or mask path on this machine; None when it has none or the record is a server's."""
        base = self.image_base
        return base / relative if base is not None and relative else None

    def image_folders(self) -> tuple[Path, Path]:
        """(the folder image paths are relative to, the image folder) of a SQLite record; StoreError
        on a server's, which keeps no images (they stay at their stations)."""
        if self.path is None or self.images_dir is None:
            raise StoreError(f"The database {self.name} keeps no images: they stay at their stations.")
        return self.path.parent, self.images_dir

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as s:
            yield s

    def attach(self, thing: Attachment) -> None:
        """Have `close()` close `thing` first (things attached later close earlier)."""
        self._attached.append(thing)

    @property
    def attached(self) -> tuple[Attachment, ...]:
        """What is attached (see `attach`), oldest first."""
        return tuple(self._attached)

    def close(self) -> None:
        """Close what is attached (a forwarder forwards what it can in a few seconds), then the database."""
        while self._attached:
            self._attached.pop().close()
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
                    name=info.name,
                    version=info.version,
                    kind=info.kind,
                    sha256=info.sha256,
                    thresholds_json=json.dumps(info.thresholds.__dict__),
                    metadata_json=json.dumps(info.metadata, sort_keys=True, default=str),
                    first_used_at=utcnow(),
                )
                s.add(row)
                s.add(
                    Event(
                        ts=utcnow(),
                        level="info",
                        kind="model",
                        message=f"Model {info.name} v{info.version} ({info.sha256[:12]}) first recorded.",
                    )
                )
                s.commit()
            return row.id

    def end_run(
        self,
        run_id: int,
        state: str,
        message: str,
        *,
        dropped_frames: int | None = None,
        failed_grabs: int | None = None,
    ) -> None:
        with self.session() as s:
            run = s.get(Run, run_id)
            if run is not None:
                run.ended_at = utcnow()
                run.end_state = state
                run.end_message = message
                run.dropped_frames = dropped_frames
                run.failed_grabs = failed_grabs
            s.add(
                Event(
                    ts=utcnow(),
                    run_id=run_id,
                    level="warning" if state == "faulted" else "info",
                    kind="run",
                    message=message,
                )
            )
            s.commit()

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


def inspection_row(
    result: InspectionResult, *, shift_id: int, model_version_id: int, image_path: str | None, mask_path: str | None
) -> Inspection:
    t = result.timing
    return Inspection(
        part_id=result.part_id,
        run_id=result.run_id,
        seq=result.seq,
        ts=from_epoch(result.timestamp),
        shift_id=shift_id,
        camera_id=result.camera_id,
        frame_id=result.frame_id,
        recipe=result.recipe,
        model_version_id=model_version_id,
        score=None if result.score != result.score else result.score,
        verdict=result.verdict.value,
        classes_json=json.dumps([c.name for c in result.classes]),
        areas_json=json.dumps({c.name: c.area_px for c in result.classes}),
        image_path=image_path,
        mask_path=mask_path,
        t_grab_ms=t.grab_ms,
        t_queue_ms=t.queue_ms,
        t_preprocess_ms=t.preprocess_ms,
        t_infer_ms=t.infer_ms,
        t_decide_ms=t.decide_ms,
        latency_ms=t.total_ms,
        error=result.error or None,
        view=result.view,
        part_verdict=(result.part_verdict or result.verdict).value,
        recipe_version=result.recipe_version or None,
        lot_id=result.lot_id or None,
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
