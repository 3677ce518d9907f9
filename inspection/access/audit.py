"""The audit trail: an append-only table (`audit_log`) of every change that touches quality -
logins and logouts, relabels, threshold and recipe changes, promotions and rollbacks, user changes.

Each entry holds the hash of the one before (`prev_hash`; 64 zeros for the first) and its own:
sha256 of `prev_hash` followed by the canonical JSON of (id, at, who, action, target, detail_json).
Editing an entry breaks its hash; deleting one leaves a gap in the ids and breaks the next entry's
link; `verify` finds both. (Removing the newest entries leaves a shorter chain that still verifies:
compare the count and last hash with a copy kept elsewhere for that.)

An entry is added inside the caller's transaction, so a change and its entry commit together or
not at all. Appends are serialized in the process by `Store.serial_lock` from reading the last hash
to the commit (one process writes a database: `open_record` holds its file lock); `session(store)`
takes the lock and commits.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session

from inspection.record.schema import AuditEntry
from inspection.record.store import Store, utcnow

log = logging.getLogger(__name__)

GENESIS = "0" * 64
STATION = "station"  # `who` for what the station noticed itself (a recipe edited outside the program)


@dataclasses.dataclass(frozen=True)
class AuditRecord:
    id: int
    at: dt.datetime  # naive UTC
    who: str
    action: str
    target: str
    detail_json: str  # canonical JSON


@dataclasses.dataclass(frozen=True)
class AuditCheck:
    ok: bool
    entries: int  # entries checked (all of them when ok)
    first_bad_id: int | None
    message: str  # one sentence


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def entry_hash(prev_hash: str, id: int, at: dt.datetime, who: str, action: str, target: str, detail_json: str) -> str:
    body = canonical_json([id, at.isoformat(timespec="microseconds"), who, action, target, detail_json])
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


@contextmanager
def session(store: Store) -> Iterator[Session]:
    """A session for a change and its audit entries: holds `store.serial_lock` and commits at the
    end (an exception rolls everything back, entries included)."""
    with store.serial_lock, store.session() as s:
        yield s
        s.commit()


def append(session: Session, *, who: str, action: str, target: str, detail: dict[str, Any]) -> AuditEntry:
    """Add an entry in `session`'s transaction; the caller holds `Store.serial_lock` until it commits
    (use `session(store)`). `detail` must be JSON (never a password or its hash)."""
    last = session.execute(select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)).first()
    new_id, prev = (last.id + 1, last.hash) if last is not None else (1, GENESIS)
    at, detail_json = utcnow(), canonical_json(detail)
    row = AuditEntry(
        id=new_id,
        at=at,
        who=who,
        action=action,
        target=target,
        detail_json=detail_json,
        prev_hash=prev,
        hash=entry_hash(prev, new_id, at, who, action, target, detail_json),
    )
    session.add(row)
    session.flush()  # the next append in this transaction chains to this one
    log.info("audit %s: %s %s by %s", new_id, action, target, who)
    return row


def verify(store: Store) -> AuditCheck:
    """Walk the chain from the first entry: the first entry that follows a gap in the ids, whose
    hash does not match its content, or whose link does not match the entry before."""
    prev_id, prev_hash, n = 0, GENESIS, 0
    t = AuditEntry
    q = select(t.id, cast(t.at, String), t.who, t.action, t.target, t.detail_json, t.prev_hash, t.hash).order_by(t.id)
    with store.session() as s:
        for id, at, who, action, target, detail_json, link, digest in s.execute(q.execution_options(yield_per=1000)):
            if id != prev_id + 1:
                missing = str(prev_id + 1) if id == prev_id + 2 else f"{prev_id + 1} to {id - 1}"
                return AuditCheck(False, n, id, f"Audit entries before entry {id} were deleted (missing: {missing}).")
            if digest != _hash_of_stored(link, id, at, who, action, target, detail_json):
                return AuditCheck(
                    False,
                    n,
                    id,
                    f"Audit entry {id} ({action} by {who}) does not match its hash: "
                    "it was changed after it was written.",
                )
            if link != prev_hash:
                return AuditCheck(
                    False,
                    n,
                    id,
                    f"Audit entry {id} does not chain to entry {prev_id}: entry {prev_id} was rewritten, "
                    "or entries were put in before it.",
                )
            prev_id, prev_hash, n = id, digest, n + 1
    return AuditCheck(
        True,
        n,
        None,
        f"The audit trail is intact: {n} entries checked"
        + (f", the last {prev_id} with hash {prev_hash}." if n else "."),
    )


def _hash_of_stored(
    prev_hash: str, id: int, at: str, who: str, action: str, target: str, detail_json: str
) -> str | None:
    """The hash an entry's stored text should have; None where the text is not even well formed (a
    time that is no time): read as text, so that a tampered row is reported rather than crashing the check."""
    try:
        return entry_hash(prev_hash, id, dt.datetime.fromisoformat(at), who, action, target, detail_json)
    except (TypeError, ValueError):
        return None


def entries(store: Store, limit: int = 100) -> list[AuditRecord]:
    """The newest `limit` entries, newest first."""
    with store.session() as s:
        rows = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)).all()
    return [AuditRecord(r.id, r.at, r.who, r.action, r.target, r.detail_json) for r in rows]
