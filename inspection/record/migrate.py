"""The record's schema version: Alembic's configuration for the migrations beside this module, and
bringing a database up to this program's schema."""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

import resources

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS = resources.on_disk("inspection.record", "migrations")  # (Alembic reads them by file name)
MIGRATION_LOCK = 0x4C455054  # a PostgreSQL advisory lock: stations starting together migrate one at a time
_migrating = threading.Lock()  # Alembic's `op` and `context` are process-wide: one migration at a time per process


def alembic_config() -> Config:
    from alembic.config import Config  # (Alembic is loaded when a record is opened, not on import)

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head() -> str | None:
    """The schema this program writes and reads (the newest migration)."""
    current: str | None = _script().get_current_head()
    return current


def known(version: str) -> bool:
    """Whether `version` is one of this program's schemas (else a newer program wrote it)."""
    return version in {r.revision for r in _script().walk_revisions()}


@functools.cache
def _script() -> ScriptDirectory:
    """The migrations, read once."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def migrate(engine: Engine) -> None:
    """Bring the database up to this program's schema (creating it in an empty one)."""
    from alembic import command

    cfg = alembic_config()
    with _migrating, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
