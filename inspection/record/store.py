"""The record: a SQLite file (WAL) through SQLAlchemy, migrated by Alembic, plus an image folder;
or a plant database on a PostgreSQL server (a `postgresql://` URL), migrated the same way, which
stations fill through their forwarders (inspection.forward).

One `Store` per database per process; a lock file keeps a second instance of the program off the
same SQLite file. The writer thread alone writes inspections (see inspection.writer); other threads
may read through `session()`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sqlite3
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from filelock import FileLock, Timeout
from sqlalchemy import create_engine, event, func, select, update
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from inspection.errors import StoreError
from inspection.record.schema import Event, Inspection, ModelVersion, Relabel, Run, Shift
from inspection.result import InspectionResult, Verdict
from models.base import ModelInfo

if TYPE_CHECKING:
    from inspection.access.users import User
    from inspection.record.forwarding import Forwarder

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 5000
CONNECT_TIMEOUT_S = 5  # a database server that does not answer within this is unreachable
MIGRATION_LOCK = 0x4C455054  # a PostgreSQL advisory lock: stations starting together migrate one at a time
_migrating = threading.Lock()  # Alembic's `op` and `context` are process-wide: one migration at a time per process
PARTIAL = ".partial"  # an image file being written; left only by a kill, removed at the next start


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def from_epoch(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC).replace(tzinfo=None)


def _set_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _alembic_config() -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _migrate(engine: Engine) -> None:
    from alembic import command

    cfg = _alembic_config()
    with _migrating, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Store:
    """An open database and its image folder (none on a server). Use `open_store()`."""

    def __init__(self, path: Path | None, engine: Engine, lock: FileLock | None, *, server: str | None = None) -> None:
        self.path = path  # None: a database server
        self.server = server  # the server's URL without its password (None: a SQLite file)
        self.engine = engine
        self._lock = lock  # None: opened read-only, beside a running station, or a server
        self.images_dir = path.parent / f"{path.stem}-images" if path is not None else None
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.audit_lock = (
            threading.RLock()
        )  # held from reading the audit trail's last hash to the commit (inspection.audit)
        self.forwarder: Forwarder | None = (
            None  # a station's buffer forwarding to a plant database (inspection.forward)
        )

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

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as s:
            yield s

    def close(self) -> None:
        """Stop the forwarder (if any, after forwarding what it can in a few seconds), then close."""
        if self.forwarder is not None:
            self.forwarder.close()
            self.forwarder = None
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

    def start_run(
        self,
        *,
        line: str,
        station: str,
        camera_spec: str,
        recipe: str,
        model_version_id: int,
        software_version: str,
        ok_below: float | None = None,
        ng_at: float | None = None,
        recipe_version: int | None = None,
    ) -> int:
        """A new run. What differs from the last run is logged, and in the audit trail by the
        station: a recipe changed (a changeover), and for the same recipe a model changed (a
        promotion, a rollback or `--model`) or, with the same model, thresholds changed (the recipe
        edited outside the program, or through `recipe_edit`, which audits who did it as well)."""
        from inspection.access import audit

        with audit.session(self) as s:
            last = s.scalar(select(Run).order_by(Run.id.desc()).limit(1))
            same = s.scalar(select(Run).where(Run.recipe == recipe).order_by(Run.id.desc()).limit(1))
            run = Run(
                started_at=utcnow(),
                line=line,
                station=station,
                camera_spec=camera_spec,
                recipe=recipe,
                model_version_id=model_version_id,
                software_version=software_version,
                ok_below=ok_below,
                ng_at=ng_at,
                recipe_version=recipe_version,
            )
            s.add(run)
            s.flush()
            if last is not None and last.recipe != recipe:
                audit.append(
                    s,
                    who=audit.STATION,
                    action="recipe_changed",
                    target=recipe,
                    detail={"run_id": run.id, "old": last.recipe, "new": recipe},
                )
            if same is not None and same.model_version_id != model_version_id:
                old, new = s.get(ModelVersion, same.model_version_id), s.get(ModelVersion, model_version_id)
                s.add(
                    Event(
                        ts=utcnow(),
                        run_id=run.id,
                        level="info",
                        kind="model",
                        message=f"Model changed from {old.name} v{old.version} ({old.sha256[:12]}) to {new.name} v{new.version} ({new.sha256[:12]}).",
                    )
                )
                audit.append(
                    s,
                    who=audit.STATION,
                    action="model_changed",
                    target=recipe,
                    detail={
                        "run_id": run.id,
                        "old": f"{old.name} v{old.version} {old.sha256}",
                        "new": f"{new.name} v{new.version} {new.sha256}",
                    },
                )
            if same is not None and same.ng_at is not None and (same.ok_below, same.ng_at) != (ok_below, ng_at):
                s.add(
                    Event(
                        ts=utcnow(),
                        run_id=run.id,
                        level="info",
                        kind="thresholds",
                        message=f"Thresholds changed from OK below {same.ok_below:.4g} / NG at {same.ng_at:.4g} "
                        f"to OK below {ok_below:.4g} / NG at {ng_at:.4g} (recipe {recipe}).",
                    )
                )
            if (
                same is not None
                and same.model_version_id == model_version_id
                and same.ng_at is not None
                and (same.ok_below, same.ng_at) != (ok_below, ng_at)
            ):  # (a new model brings its own: audited above)
                audit.append(
                    s,
                    who=audit.STATION,
                    action="thresholds_changed",
                    target=recipe,
                    detail={
                        "run_id": run.id,
                        "old": {"ok_below": same.ok_below, "ng_at": same.ng_at},
                        "new": {"ok_below": ok_below, "ng_at": ng_at},
                    },
                )
            s.add(
                Event(
                    ts=utcnow(),
                    run_id=run.id,
                    level="info",
                    kind="run",
                    message=f"Run {run.id} started on {camera_spec} with recipe {recipe}.",
                )
            )
            return run.id

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

    def relabel(
        self,
        part_id: str,
        verdict: str,
        *,
        user: User,
        classes: tuple[str, ...] = (),
        mask: np.ndarray | None = None,
        comment: str = "",
    ) -> int:
        """Record a user's judgement of a part (OK or NG, classes, optionally a mask) as a new row,
        with its audit entry in the same transaction; the model's verdict is never touched.
        PermissionDenied unless the user may relabel. Returns the relabel's id."""
        from inspection.access import audit
        from inspection.access.users import Permission, require

        user = require(self, user, Permission.RELABEL)
        if verdict not in ("OK", "NG"):
            raise StoreError(f"A relabel's verdict is OK or NG, not {verdict!r}: a person decides.")
        if verdict == "OK" and classes:
            raise StoreError("A part relabelled OK has no defect classes.")
        with audit.session(self) as s:
            part = s.scalar(select(Inspection).where(Inspection.part_id == part_id))
            if part is None:
                raise StoreError(f"The database {self.name} has no part {part_id}.")
            latest = s.scalar(
                select(Relabel).where(Relabel.inspection_id == part.id).order_by(Relabel.id.desc()).limit(1)
            )
            mask_rel = None
            if mask is not None:
                folder = self.images_dir / "relabels"
                folder.mkdir(parents=True, exist_ok=True)
                n = s.scalar(select(func.count()).select_from(Relabel).where(Relabel.inspection_id == part.id)) or 0
                mask_file = folder / f"{part_id}_relabel{n + 1}_mask.png"
                _write_png(mask_file, mask.astype(np.uint8) * 255 if mask.dtype == bool else mask.astype(np.uint8))
                mask_rel = str(mask_file.relative_to(self.path.parent))
            row = Relabel(
                inspection_id=part.id,
                at=utcnow(),
                who=user.name,
                previous_verdict=latest.verdict if latest else part.verdict,
                verdict=verdict,
                classes_json=json.dumps(list(classes)),
                mask_path=mask_rel,
                comment=comment,
            )
            s.add(row)
            s.flush()
            audit.append(
                s,
                who=user.name,
                action="relabel",
                target=part_id,
                detail={
                    "relabel_id": row.id,
                    "previous_verdict": row.previous_verdict,
                    "verdict": verdict,
                    "classes": list(classes),
                    "mask_path": mask_rel,
                    "comment": comment,
                },
            )
            return row.id

    def end_dangling_runs(self) -> int:
        """Runs left without an end by a crash or a kill end at their last inspection (else their start):
        reports would otherwise count them as production for ever. Their images are reconciled with
        their rows (see `_reconcile_images`). Returns how many runs."""
        with self.session() as s:
            runs = s.scalars(select(Run).where(Run.ended_at.is_(None))).all()
            for run in runs:
                last = s.scalar(select(func.max(Inspection.ts)).where(Inspection.run_id == run.id))
                missing, orphans = self._reconcile_images(s, run.id, run.started_at, last or run.started_at)
                run.ended_at = last or run.started_at
                run.end_state = "crashed"
                run.end_message = (
                    f"Run {run.id} ended without a stop (the program was killed or crashed); its end is its last "
                    f"inspection. Images reconciled: {missing} marked missing, {orphans} without a row removed."
                )
                s.add(Event(ts=utcnow(), run_id=run.id, level="warning", kind="run", message=run.end_message))
            s.commit()
            return len(runs)

    def _reconcile_images(self, s: Session, run_id: int, start: dt.datetime, end: dt.datetime) -> tuple[int, int]:
        """After a crash: rows whose image never reached the disk are marked missing, and image files
        of the run's days that no row names (or that a kill left half written) are removed.
        Returns (rows marked, files removed)."""
        base = self.path.parent
        rows = s.execute(
            select(Inspection.id, Inspection.image_path, Inspection.mask_path).where(
                Inspection.run_id == run_id, Inspection.image_path.is_not(None), Inspection.image_status.is_(None)
            )
        ).all()
        lost = [
            i
            for i, image, mask in rows
            if not (base / image).is_file() or (mask is not None and not (base / mask).is_file())
        ]
        for k in range(0, len(lost), 500):
            s.execute(update(Inspection).where(Inspection.id.in_(lost[k : k + 500])).values(image_status="missing"))
        removed = 0
        day = start.date()
        while day <= end.date():
            folder = self.images_dir / day.strftime("%Y%m%d")
            if folder.is_dir():
                t0 = dt.datetime.combine(day, dt.time())
                known = set(
                    s.scalars(
                        select(Inspection.part_id).where(Inspection.ts >= t0, Inspection.ts < t0 + dt.timedelta(days=1))
                    )
                )
                for f in folder.iterdir():
                    if f.name.endswith(PARTIAL) or (f.suffix == ".png" and f.stem.removesuffix("_mask") not in known):
                        f.unlink(missing_ok=True)
                        removed += 1
            day += dt.timedelta(days=1)
        return len(lost), removed

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


def _not_our_record(path: Path, *, current: bool = False) -> str | None:
    """Why the existing file at `path` is no record this program may open, as one sentence, or None.
    Read-only: an empty file, another program's database or a newer schema is never migrated or changed.
    `current`: also refuse a record not yet brought up to this program's schema (it is read, not migrated)."""
    if path.stat().st_size == 0:
        return f"The database {path} is an empty file (0 bytes), not a Lepton Inspect record; move it away to start a new one."
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            row = (
                con.execute("SELECT version_num FROM alembic_version").fetchone()
                if "alembic_version" in tables
                else None
            )
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        return f"The database {path} cannot be opened ({exc})."
    if row is None and tables - {"alembic_version"}:
        return f"The file {path} is a database of another program, not a Lepton Inspect record."
    if row is None and not current:
        return None  # a new, empty database: open_store creates the schema
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    head, version = script.get_current_head(), row[0] if row is not None else None
    if version is not None and version not in {r.revision for r in script.walk_revisions()}:
        return (
            f"The database {path} was written by a newer Lepton Inspect (schema {version}; this program knows schemas up to "
            f"{head}): open it with that version."
        )
    if current and version != head:
        return f"The database {path} is at schema {version}, this program reads {head}: open it once with the station to update it."
    return None


def is_url(db: str | Path) -> bool:
    """Whether `db` names a database server (an SQLAlchemy URL) rather than a SQLite file."""
    return isinstance(db, str) and "://" in db


def server_url(db: str) -> URL:
    """The SQLAlchemy URL of a PostgreSQL server (`postgresql://` runs on psycopg 3); one sentence if it is none."""
    try:
        url = make_url(db)
    except ArgumentError:
        raise StoreError(
            f"{_hide_password(db)} is not a database URL such as postgresql://user@host:5432/lepton."
        ) from None
    except ValueError:
        raise StoreError(f"The port in the database URL {_hide_password(db)} is not a number.") from None
    shown = _hide_password(db)
    if url.drivername not in ("postgresql", "postgresql+psycopg"):
        raise StoreError(
            f"The database URL {shown} is not supported: give a SQLite file or postgresql://user@host:5432/lepton."
        )
    if "@" in (url.host or ""):
        raise StoreError(f"The database URL {shown} has an '@' in its password or host: write it as %40.")
    return url.set(drivername="postgresql+psycopg")


def shown_url(url: URL) -> str:
    """A server's URL as people gave it (the driver left out), without its password."""
    return url.set(drivername=url.get_backend_name()).render_as_string(hide_password=True)


def _hide_password(text: str) -> str:
    """A URL-like text with whatever stands between `user:` and `@` replaced."""
    head, sep, tail = text.partition("://")
    if not sep or "@" not in tail:
        return text
    auth, _, host = tail.rpartition("@")
    return f"{head}://{auth.split(':', 1)[0]}{':***' if ':' in auth else ''}@{host}"


def error_reason(exc: Exception) -> str:
    """The first line of a database error's own message (the driver's, where there is one), without its full stop."""
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0].rstrip(".")


def server_error(url: URL, exc: Exception) -> StoreError:
    """One sentence for a server that refused or could not be reached (never the password)."""
    reason = error_reason(exc)
    if url.password:
        reason = reason.replace(str(url.password), "***")
    return StoreError(
        f"The database server at {url.host or 'localhost'}:{url.port or 5432} cannot be reached: {reason}."
    )


def _server_engine(url: URL, *, read_only: bool = False) -> Engine:
    """An engine on a PostgreSQL server, checked by connecting once; StoreError (one sentence) if it cannot."""
    # A server that vanishes mid-statement (a cut cable) is noticed within a minute, not hung on.
    args: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": 30_000,
        "options": "-c statement_timeout=60000",
    }
    if read_only:
        args["options"] += " -c default_transaction_read_only=on"
    engine = create_engine(url, pool_pre_ping=True, connect_args=args)
    try:
        with engine.connect():
            pass
    except (DatabaseError, OperationalError) as exc:
        engine.dispose()
        raise server_error(url, exc) from None
    return engine


def _open_server(db: str, *, read_only: bool) -> Store:
    """A plant database on a server: migrated to this program's schema (or, read-only, checked to be at it)."""
    from alembic.util import CommandError

    url = server_url(db)
    shown = shown_url(url)
    engine = _server_engine(url, read_only=read_only)
    try:
        if read_only:
            from alembic.script import ScriptDirectory

            head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
            with engine.connect() as conn:
                has_version = engine.dialect.has_table(conn, "alembic_version")
                version = (
                    conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() if has_version else None
                )
            if version != head:
                raise StoreError(
                    f"The database {shown} is at schema {version or 'none'}, this program reads {head}: "
                    "open it once with a station (or `lepton-inspect run --db URL`) to update it."
                )
        else:
            _migrate(engine)
    except CommandError as exc:
        engine.dispose()
        raise StoreError(f"The database {shown} was written by a newer Lepton Inspect ({exc}).") from None
    except OperationalError as exc:  # (the server went away meanwhile)
        engine.dispose()
        raise server_error(url, exc) from None
    except DatabaseError as exc:  # the server answers but refuses: rights, another program's tables
        engine.dispose()
        raise StoreError(f"The database {shown} cannot be used: {error_reason(exc)}.") from None
    except StoreError:
        engine.dispose()
        raise
    return Store(None, engine, None, server=shown)


def open_store(path: str | Path) -> Store:
    """Open (creating and migrating as needed) the database at `path` (a SQLite file, or a server's
    URL); one sentence if it cannot."""
    if is_url(path):
        return _open_server(str(path), read_only=False)
    path = Path(path).expanduser().resolve()
    if path.is_dir():
        raise StoreError(f"The database path {path} is a folder; give a file name such as {path / 'lepton.db'}.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"Cannot create the database folder {path.parent}: {exc.strerror}.") from None
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise StoreError(f"The database path {path} is not writable.")
    if path.exists() and not path.stat().st_mode & 0o222:  # marked read-only (which root, too, respects here)
        raise StoreError(f"The database {path} is read-only; open it with `shifts` or `report`, or make it writable.")
    # Not thread-local: a store opened on one thread (the GUI's worker) is closed on another (the GUI's).
    lock = FileLock(str(path) + ".lock", thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise StoreError(f"The database {path} is in use by another Lepton Inspect instance.") from None
    except OSError as exc:
        raise StoreError(f"Cannot lock the database {path}: {exc.strerror}.") from None
    problem = _not_our_record(path) if path.exists() else None
    if problem:
        lock.release()
        raise StoreError(problem)
    engine = create_engine(
        f"sqlite:///{path}", connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    )
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
        raise StoreError(
            f"The database {path} cannot be written ({exc.orig if getattr(exc, 'orig', None) else exc})."
        ) from None
    return store


def open_station_store(db: str | Path | None, buffer: str | Path | None = None) -> Store:
    """The station's record. A path (None: the default file) opens that SQLite file, as `open_store`;
    a server's URL opens the local buffer (`buffer`, else the default file) with a `Forwarder` to the
    server started (inspection.forward), which `Store.close()` stops. The station starts whether the
    server answers or not."""
    from inspection.record.forwarding import Forwarder
    from inspection.settings.config import default_db

    if db is None or not is_url(db):
        return open_store(db or default_db())
    server_url(str(db))  # a malformed or unsupported URL fails before anything is opened
    store = open_store(buffer or default_db())
    try:
        store.forwarder = Forwarder(store, str(db))
        store.forwarder.start()
    except BaseException:
        store.close()
        raise
    return store


def open_record(path: str | Path) -> Store:
    """Open a database read-only, without its lock, beside a station that may be writing it (WAL):
    for reports and listings. One sentence if it is missing or was never brought up to date."""
    if is_url(path):
        return _open_server(str(path), read_only=True)
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise StoreError(f"There is no database at {path}.")
    problem = _not_our_record(path, current=True)
    if problem:
        raise StoreError(problem)
    engine = create_engine(
        f"sqlite:///file:{path}?mode=ro&uri=true",
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )
    event.listen(engine, "connect", _set_read_pragmas)
    return Store(path, engine, None)


def _set_read_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.close()


class ImageStore:
    """Part images and masks as PNG under the store's image folder, one folder per day; paths are
    relative to the database's folder. A file appears whole or not at all (written aside, then
    renamed), so a kill never leaves half a PNG under a part's name."""

    def __init__(self, store: Store) -> None:
        self.root = store.images_dir
        self.base = store.path.parent

    def paths(self, result: InspectionResult) -> tuple[str, str | None]:
        """Where a part's image (and mask, when it has a defect) are kept, relative to the database's folder."""
        folder = self.root.relative_to(self.base) / from_epoch(result.timestamp).strftime("%Y%m%d")
        mask = str(folder / f"{result.part_id}_mask.png") if result.defect_mask.any() else None
        return str(folder / f"{result.part_id}.png"), mask

    def write(self, result: InspectionResult, image_path: str, mask_path: str | None) -> None:
        """Write the files `paths()` named; StoreError (one sentence) if the disk refuses."""
        target = self.base / image_path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the image folder {target.parent}: {exc.strerror}.") from None
        image = result.image
        if mask_path is not None:  # the mask first: a part whose image is on disk has its mask there too
            _write_png(self.base / mask_path, (result.defect_mask != 0).view(np.uint8) * 255)
        _write_png(target, image)


def encode_png(array: np.ndarray) -> bytes:
    """An 8-bit grey (H, W) or RGB (H, W, 3) image as PNG bytes, for the image thread.

    Encoding is most of what keeping images costs the station: OpenCV's PNG took 24 ms for a
    1130x460 colour part on this 2-core CPU (13 ms even uncompressed), on a core the network
    wants. Here the rows get PNG's Sub filter in NumPy (1 ms) and deflate comes from ISA-L
    (`isal`, 4 ms; the standard zlib, the fallback, 14 ms), for files the size of OpenCV's at its
    fastest level. Any PNG reader reads them."""
    if (
        array.dtype != np.uint8
        or array.ndim not in (2, 3)
        or (array.ndim == 3 and array.shape[2] != 3)
        or array.size == 0
    ):
        raise StoreError(f"Cannot encode an image of shape {array.shape} and type {array.dtype} as PNG.")
    h, w = array.shape[:2]
    px = 1 if array.ndim == 2 else 3
    rows = np.ascontiguousarray(array).reshape(h, w * px)
    filtered = np.empty((h, w * px + 1), np.uint8)
    filtered[:, 0] = 1  # Sub: each byte minus the byte of the pixel to its left (wrapping)
    filtered[:, 1 : px + 1] = rows[:, :px]
    np.subtract(rows[:, px:], rows[:, :-px], out=filtered[:, px + 1 :])

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))

    header = struct.pack(">IIBBBBB", w, h, 8, 0 if px == 1 else 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", _deflate(filtered.data, 1)) + chunk(b"IEND", b"")
    )


def _deflate(data: Any, level: int) -> bytes:
    try:
        from isal import isal_zlib
    except ImportError:  # (a wheel missing for this platform) the standard library's, slower
        return zlib.compress(data, level)
    return isal_zlib.compress(data, level)


def _write_png(path: Path, array: np.ndarray) -> None:
    """`array` (grey or RGB) as a PNG at `path`, written aside and then renamed."""
    data = encode_png(array)
    part = path.with_name(path.name + PARTIAL)
    try:
        part.write_bytes(data)
        os.replace(part, path)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise StoreError(f"Cannot write image {path}: {exc.strerror}.") from None


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
