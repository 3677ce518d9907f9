"""Forwarding a station's record to the plant database (a PostgreSQL server).

A station pointed at a server (`--db postgresql://...`) keeps its own record in a local SQLite file,
the buffer, and inspects whether the server answers or not. Its `Forwarder` thread copies the
buffer's rows to the server, every column of each table as the schema has it: runs (until they have
ended: a run changes at its end), inspections, events, relabels and recipe versions in the order of
their ids, and the model versions, shifts, runs and parts those rows refer to, with the references
translated to the server's ids. A row is found on the server by its key across stations: a part's
id, a run's or an event's `uid`, a model's sha256, a shift's start and name, a relabel's part and time.

How far each table has been forwarded is kept in the buffer (`forward_state`), written only after the
server has committed the rows; a row sent again after a kill between the two is skipped by the server
(INSERT ... ON CONFLICT on its key), so nothing is lost and nothing is counted twice. While the server
cannot be reached the forwarder retries with a growing pause (1 s to 30 s) and logs one warning per
outage. Images stay at the station: their paths are relative to the station's record.

Recipe versions are numbered by each database in the order it first saw a content, so a station's
"prod-a version 2" may be the server's version 3: the server numbers the contents it receives the
same way (by name and sha256), and the `recipe_version` of forwarded runs and inspections is
translated to the server's number, so that on the server one number means one content, plant-wide.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from inspection.errors import StoreError
from inspection.priority import background_thread
from inspection.record.schema import Base, ForwardState
from inspection.record.server import error_reason, open_server, server_error, server_url, shown_url
from inspection.record.store import Store

log = logging.getLogger(__name__)

BATCH = 500  # rows per server transaction
POLL_S = 0.5  # how often the buffer is read for new rows while the server answers
MIN_BACKOFF_S, MAX_BACKOFF_S = 1.0, 30.0
CLOSE_S = 10.0  # what a closing station waits for its last rows to reach the server


@dataclasses.dataclass(frozen=True)
class _Spec:
    key: tuple[str, ...]  # finds the row on the server (unique there)
    refs: tuple[tuple[str, str], ...] = ()  # (column, table it refers to)
    update: bool = False  # a row sent again replaces the server's (runs change at their end)


SPECS: dict[str, _Spec] = {
    "model_versions": _Spec(("sha256",)),
    "shifts": _Spec(("start_at", "name")),
    "recipe_versions": _Spec(("name", "sha256")),
    "runs": _Spec(("uid",), (("model_version_id", "model_versions"),), update=True),
    "inspections": _Spec(
        ("part_id",), (("run_id", "runs"), ("shift_id", "shifts"), ("model_version_id", "model_versions"))
    ),
    "events": _Spec(("uid",), (("run_id", "runs"),)),
    "relabels": _Spec(("inspection_id", "at"), (("inspection_id", "inspections"),)),
}
IN_ORDER = ("recipe_versions", "runs", "inspections", "events", "relabels")  # by id; the other tables when referenced
ACKS = "events_acknowledged"  # forward_state's row for the acknowledgements forwarded
EPOCH = dt.datetime(1970, 1, 1)


@dataclasses.dataclass(frozen=True)
class ForwardStatus:
    server: str  # the server's URL without its password
    connected: bool
    backlog: int  # the buffer's rows not yet on the server for good (an open run counts until it has ended)
    forwarded: int  # rows the server committed since the forwarder started
    last_error: str  # one sentence; "" while the server answers
    failed_tries: int  # tries that failed since the server last answered


class Forwarder:
    """Copies a station's buffer to a plant database on its own thread; `status()` for the GUI and CLI."""

    def __init__(self, local: Store, url: str) -> None:
        self.local = local
        self.url = url
        parsed = server_url(url)
        self.shown = shown_url(parsed)
        self._server_key = f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"
        self._server: Store | None = None
        self._ids: dict[str, dict[int, int]] = {name: {} for name in SPECS}  # local id -> server id
        self._versions: dict[tuple[str, int], int] = {}  # (recipe, local version) -> the server's version
        self._open_runs: set[int] = set()  # runs sent before they ended
        self._positions = self._load_positions()
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._deadline = float("inf")  # while closing: when to give up on the last rows
        self._connected = False
        self._error = ""
        self._failures = 0
        self._forwarded = 0
        self._backlog = self._count_backlog()
        self._synced_from = -1.0  # the start (monotonic) of the latest pass that left nothing behind
        self._thread: threading.Thread | None = None

    # -- the station's side -----------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="lepton-forward", daemon=True)
        self._thread.start()

    def status(self) -> ForwardStatus:
        with self._cond:
            return ForwardStatus(
                self.shown, self._connected, self._backlog, self._forwarded, self._error, self._failures
            )

    def retry_now(self) -> None:
        """Try the server at once instead of after the current pause."""
        self._wake.set()

    def sync(self, timeout_s: float) -> bool:
        """Wait until a pass begun after this call has left nothing behind; False after `timeout_s`."""
        asked = time.monotonic()
        self._wake.set()
        with self._cond:
            return self._cond.wait_for(lambda: self._synced_from >= asked, timeout_s)

    def close(self, timeout_s: float = CLOSE_S) -> None:
        """Forward what can be forwarded within `timeout_s`, then end the thread; the rest goes at the next start."""
        if self._thread is None:
            return
        self._deadline = time.monotonic() + timeout_s
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s + 5)
        self._thread = None
        if self._server is not None:
            self._server.close()
            self._server = None
        backlog = self.status().backlog
        if backlog:
            log.warning(
                "%d rows of the station's record are not yet in the plant database %s; "
                "they are forwarded at the next start.",
                backlog,
                self.shown,
            )

    # -- the thread ---------------------------------------------------------------------------
    def _loop(self) -> None:
        background_thread()
        pause = MIN_BACKOFF_S
        while True:
            final = self._stop.is_set()
            started = time.monotonic()
            try:
                if self._server is None:
                    # (migrates the server to this program's schema)
                    self._server = open_server(self.url, read_only=False)
                while self._pass() and time.monotonic() < self._deadline:
                    pass
                self._answered()
                pause = MIN_BACKOFF_S
                wait = POLL_S
            except Exception as exc:  # (whatever it is, the thread goes on: retried, and shown in status())
                self._failed(exc)
                wait, pause = pause, min(pause * 2, MAX_BACKOFF_S)
            backlog = self._count_backlog()
            with self._cond:
                self._backlog = backlog
                if self._connected and backlog == 0:
                    self._synced_from = started
                self._cond.notify_all()
            if final:
                return
            self._wake.wait(wait)
            self._wake.clear()

    def _answered(self) -> None:
        with self._cond:
            if self._error:
                log.info("The plant database %s answers again; forwarding the station's rows.", self.shown)
            self._connected, self._error, self._failures = True, "", 0

    def _failed(self, exc: Exception) -> None:
        self._ids = {name: {} for name in SPECS}  # what a rolled-back transaction mapped is void
        self._open_runs.clear()
        if isinstance(exc, StoreError):
            message = str(exc)
        elif isinstance(exc, (OperationalError, InterfaceError)):
            message = str(server_error(server_url(self.url), exc))
        else:
            message = f"Forwarding to the plant database {self.shown} failed: {error_reason(exc)}."
        if self._server is not None:
            self._server.engine.dispose()  # (connections to a server that went away)
        with self._cond:
            first = self._connected or not self._error
            self._connected, self._error = False, message
            self._failures += 1
        if first:
            log.warning(
                "%s The station keeps inspecting and forwards its rows when the server answers again.",
                message,
                exc_info=not isinstance(exc, (StoreError, SQLAlchemyError, OSError)),
            )  # (a surprise: with its traceback, in the log)
        else:
            log.debug("plant database still unreachable: %s", message)

    def _pass(self) -> int:
        """One batch of each table in order, then the acknowledgements; the rows the server committed."""
        return sum(self._forward(name) for name in IN_ORDER) + self._forward_acks()

    def _forward_acks(self) -> int:
        """Alarms acknowledged at the station after their event reached the server: the server's
        copy is acknowledged too (the only column of a forwarded row that changes and matters there;
        images stay at the station, so their status does not). The position is the latest
        acknowledgement time forwarded, in microseconds since the epoch."""
        table = Base.metadata.tables["events"]
        since = EPOCH + dt.timedelta(microseconds=self._positions.get(ACKS, 0))
        with self.local.engine.connect() as conn:
            rows = conn.execute(
                select(table.c.uid, table.c.acknowledged_at).where(
                    table.c.acknowledged_at > since, table.c.id <= self._positions.get("events", 0)
                )
            ).all()
        if not rows:
            return 0
        assert self._server is not None
        with self._server.engine.begin() as conn:
            conn.execute(
                update(table).where(table.c.uid == bindparam("u")).values(acknowledged_at=bindparam("a")),
                [{"u": uid, "a": at} for uid, at in rows],
            )
        self._save_position(ACKS, (max(at for _, at in rows) - EPOCH) // dt.timedelta(microseconds=1))
        with self._cond:
            self._forwarded += len(rows)
        return len(rows)

    def _forward(self, name: str) -> int:
        table = Base.metadata.tables[name]
        start = self._positions.get(name, 0)
        with self.local.engine.connect() as conn:
            rows = (
                conn.execute(select(table).where(table.c.id > start).order_by(table.c.id).limit(BATCH)).mappings().all()
            )
        position = start
        if name == "runs":  # a run is forwarded for good once it has ended; until then again at each change
            for r in rows:
                if r["ended_at"] is None:
                    break
                position = r["id"]
            rows = [r for r in rows if r["ended_at"] is not None or r["id"] not in self._open_runs]
        elif rows:
            position = rows[-1]["id"]
        if not rows and position == start:
            return 0
        if rows:
            assert self._server is not None
            with self._server.engine.begin() as conn:
                self._send(conn, name, rows, ids=name == "runs")
        self._save_position(name, position)
        if name == "runs":
            self._open_runs = {r["id"] for r in rows if r["ended_at"] is None} | {
                i for i in self._open_runs if i > position
            }
        with self._cond:
            self._forwarded += len(rows)
        return len(rows)

    def _send(self, conn: Connection, name: str, rows: Sequence[RowMapping], *, ids: bool) -> None:
        """Insert `rows` of the buffer's table `name` on the server (skipping those it has; replacing
        them for runs), their references first; with `ids`, remember the server's id of each."""
        if name == "recipe_versions":
            self._send_versions(conn, rows)
            return
        spec, table = SPECS[name], Base.metadata.tables[name]
        refs = dict(spec.refs)
        for column, parent in spec.refs:
            self._ensure(conn, parent, {r[column] for r in rows if r[column] is not None})
        values: list[dict[str, Any]] = [
            {c: (self._ids[refs[c]][v] if c in refs and v is not None else v) for c, v in r.items() if c != "id"}
            for r in rows
        ]
        if "recipe_version" in table.c:
            self._ensure_versions(
                conn, {(v["recipe"], v["recipe_version"]) for v in values if v["recipe_version"] is not None}
            )
            for v in values:
                if v["recipe_version"] is not None:
                    v["recipe_version"] = self._versions[(v["recipe"], v["recipe_version"])]
        stmt = pg_insert(table).values(values)
        if spec.update:
            stmt = stmt.on_conflict_do_update(
                index_elements=list(spec.key), set_={c: stmt.excluded[c] for c in values[0] if c not in spec.key}
            )
        else:
            stmt = stmt.on_conflict_do_nothing()
        conn.execute(stmt)
        if ids:
            found = dict(_by_key(conn, table, spec.key, [tuple(v[k] for k in spec.key) for v in values]))
            for r, v in zip(rows, values, strict=True):
                self._ids[name][r["id"]] = found[tuple(v[k] for k in spec.key)]

    def _ensure(self, conn: Connection, name: str, local_ids: Iterable[int]) -> None:
        """The rows of `name` with these local ids are on the server and their server ids known."""
        missing = sorted(i for i in local_ids if i not in self._ids[name])
        if not missing:
            return
        table = Base.metadata.tables[name]
        with self.local.engine.connect() as lc:
            rows = lc.execute(select(table).where(table.c.id.in_(missing))).mappings().all()
        self._send(conn, name, rows, ids=True)

    def _ensure_versions(self, conn: Connection, pairs: set[tuple[str, int]]) -> None:
        """The server's version number of each (recipe, local version) is known (sent if need be)."""
        missing = sorted(p for p in pairs if p not in self._versions)
        if missing:
            table = Base.metadata.tables["recipe_versions"]
            with self.local.engine.connect() as lc:
                rows = (
                    lc.execute(select(table).where(tuple_(table.c.name, table.c.version).in_(missing))).mappings().all()
                )
            self._send_versions(conn, rows)

    def _send_versions(self, conn: Connection, rows: Sequence[RowMapping]) -> None:
        """Recipe versions onto the server, numbered there: a content it has keeps the server's
        number, a new one gets the recipe's next (the table is locked against another station's
        numbering until the transaction ends)."""
        table = Base.metadata.tables["recipe_versions"]
        conn.execute(text("LOCK TABLE recipe_versions IN SHARE ROW EXCLUSIVE MODE"))
        for r in rows:
            version = conn.execute(
                select(table.c.version).where(table.c.name == r["name"], table.c.sha256 == r["sha256"])
            ).scalar()
            if version is None:
                version = (
                    conn.execute(select(func.max(table.c.version)).where(table.c.name == r["name"])).scalar() or 0
                ) + 1
                conn.execute(table.insert().values({**{c: v for c, v in r.items() if c != "id"}, "version": version}))
            self._versions[(r["name"], r["version"])] = version

    # -- the buffer's bookkeeping ---------------------------------------------------------------
    def _load_positions(self) -> dict[str, int]:
        with self.local.session() as s:
            return dict(
                s.execute(
                    select(ForwardState.table_name, ForwardState.last_id).where(ForwardState.server == self._server_key)
                ).all()
            )

    def _save_position(self, name: str, last_id: int) -> None:
        if self._positions.get(name, 0) == last_id:
            return
        stmt = sqlite_insert(ForwardState).values(server=self._server_key, table_name=name, last_id=last_id)
        with self.local.engine.begin() as conn:
            conn.execute(stmt.on_conflict_do_update(index_elements=["server", "table_name"], set_={"last_id": last_id}))
        self._positions[name] = last_id

    def _count_backlog(self) -> int:
        try:
            with self.local.engine.connect() as conn:
                n = 0
                for name in IN_ORDER:
                    table = Base.metadata.tables[name]
                    n += conn.execute(
                        select(func.count()).select_from(table).where(table.c.id > self._positions.get(name, 0))
                    ).scalar_one()
                return n
        except SQLAlchemyError as exc:  # the buffer itself is failing: the writer says so; keep the last count
            log.debug("backlog not counted: %s", exc)
            return self._backlog


def forwarder_of(store: Store) -> Forwarder | None:
    """The forwarder attached to a station's record (`open_station_record`), for its status; None
    when the record is local only."""
    return next((a for a in store.attached if isinstance(a, Forwarder)), None)


def _by_key(
    conn: Connection, table: Table, key: tuple[str, ...], values: list[tuple[Any, ...]]
) -> Iterable[tuple[tuple[Any, ...], int]]:
    """(key, id) of the server's rows with these keys."""
    cols = [table.c[k] for k in key]
    where = cols[0].in_([v[0] for v in values]) if len(cols) == 1 else tuple_(*cols).in_(values)
    for row in conn.execute(select(table.c.id, *cols).where(where)):
        yield tuple(row[1:]), row[0]
