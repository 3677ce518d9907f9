"""The event log (`events`): what the alarm monitor writes and reads - alarms raised, acknowledged,
and the ones still waiting for an operator after a restart."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

from sqlalchemy import select, update

from inspection.record.schema import Event
from inspection.record.store import Store, utcnow


@dataclasses.dataclass(frozen=True)
class LoggedAlarm:
    """An alarm's row: its id, kind, message and when it was raised."""

    event_id: int
    kind: str
    message: str
    raised_at: dt.datetime


def add_event(store: Store, *, level: str, kind: str, message: str, run_id: int | None, ts: dt.datetime) -> int:
    """Record one event; its id."""
    with store.session() as s:
        row = Event(ts=ts, run_id=run_id, level=level, kind=kind, message=message)
        s.add(row)
        s.commit()
        return row.id


def acknowledge(store: Store, event_ids: Iterable[int]) -> None:
    """Mark these alarms acknowledged now (those not acknowledged yet)."""
    ids = list(event_ids)
    with store.session() as s:
        s.execute(
            update(Event).where(Event.id.in_(ids), Event.acknowledged_at.is_(None)).values(acknowledged_at=utcnow())
        )
        s.commit()


def unacknowledged_alarms(store: Store, kinds: Iterable[str]) -> list[LoggedAlarm]:
    """The alarms of these kinds that no one has acknowledged, oldest first."""
    with store.session() as s:
        rows = s.scalars(
            select(Event)
            .where(Event.level == "alarm", Event.kind.in_(list(kinds)), Event.acknowledged_at.is_(None))
            .order_by(Event.id)
        ).all()
        return [LoggedAlarm(r.id, r.kind, r.message, r.ts) for r in rows]
