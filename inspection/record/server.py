"""A plant database on a PostgreSQL server: its URL as people give it and as they are shown it
(never the password), the engine on it, and opening it as a record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError

from inspection.errors import StoreError
from inspection.record import migrate
from inspection.record.store import Store

CONNECT_TIMEOUT_S = 5  # a database server that does not answer within this is unreachable


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


def open_server(db: str, *, read_only: bool) -> Store:
    """A plant database on a server: migrated to this program's schema (or, read-only, checked to be at it)."""
    from alembic.util import CommandError

    url = server_url(db)
    shown = shown_url(url)
    engine = _server_engine(url, read_only=read_only)
    try:
        if read_only:
            _check_current(engine, shown)
        else:
            migrate.migrate(engine)
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


def _check_current(engine: Engine, shown: str) -> None:
    """StoreError unless the server's schema is this program's (a reader never migrates)."""
    head = migrate.head()
    with engine.connect() as conn:
        has_version = engine.dialect.has_table(conn, "alembic_version")
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() if has_version else None
    if version != head:
        raise StoreError(
            f"The database {shown} is at schema {version or 'none'}, this program reads {head}: "
            "open it once with a station (or `lepton-inspect run --db URL`) to update it."
        )
