"""The record on a real SQLite file (and, where the test is not about the file, on PostgreSQL)."""

from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from inspection.access.runs import start_run
from inspection.errors import StoreError
from inspection.record.opening import open_record
from inspection.record.runs import RunSpec
from inspection.record.schema import Base
from inspection.record.server import is_url


def database(backend, tmp_path, request) -> str:
    """A new record on the test's backend: a SQLite file's path, or a PostgreSQL database's URL."""
    return str(tmp_path / "a.db") if backend == "sqlite" else request.getfixturevalue("pg_url")


def rows(db, query):
    """All rows of `query`, read apart from the store (sqlite3, or a new connection to the server)."""
    if not is_url(db):
        con = sqlite3.connect(db)
        try:
            return con.execute(query).fetchall()
        finally:
            con.close()
    from sqlalchemy import create_engine, text

    engine = create_engine(db.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(query)).all()]
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_schema(tmp_path):
    with open_record(tmp_path / "a.db") as store:
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert diff == []
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    # Opening again is a no-op migration.
    with open_record(tmp_path / "a.db") as store:
        assert store.counts() == {"ok": 0, "ng": 0, "review": 0, "parts": 0}


def test_a_second_instance_is_refused(tmp_path):
    with open_record(tmp_path / "a.db"):
        with pytest.raises(StoreError, match="in use by another"):
            open_record(tmp_path / "a.db")
    open_record(tmp_path / "a.db").close()  # free again once closed


def test_a_store_closed_on_another_thread_frees_the_database(tmp_path):
    """The GUI opens the line on its worker thread and closes it on the GUI thread; the database
    must then open again (a thread-local lock stayed held, and a restart in the same process failed)."""
    import threading

    opened = []
    t = threading.Thread(target=lambda: opened.append(open_record(tmp_path / "a.db")))
    t.start()
    t.join()
    opened[0].close()
    open_record(tmp_path / "a.db").close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(StoreError, match="not writable"):
        open_record(ro / "a.db")


def test_unwritable_path_is_one_sentence(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="Cannot create the database folder"):
        open_record(blocker / "sub" / "a.db")


def test_a_file_that_is_not_a_database(tmp_path):
    p = tmp_path / "junk.db"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot be opened"):
        open_record(p)
    assert p.read_bytes() == b"this is not sqlite" * 100  # left as it was
    with pytest.raises(StoreError, match="cannot be opened"):  # not "in use": the lock was released
        open_record(p)


def test_model_versions_are_recorded_once(tmp_path, demo_inspector, backend, request):
    db = database(backend, tmp_path, request)
    with open_record(db) as store:
        a = store.model_version(demo_inspector.info)
        b = store.model_version(demo_inspector.info)
        assert a == b
    assert rows(db, "select name, sha256 from model_versions") == [
        (demo_inspector.info.name, demo_inspector.info.sha256)
    ]


def test_model_and_threshold_changes_are_logged_at_the_run_that_brings_them(tmp_path, demo_inspector, backend, request):
    import dataclasses

    db = database(backend, tmp_path, request)
    with open_record(db) as store:
        first = store.model_version(demo_inspector.info)
        other = store.model_version(dataclasses.replace(demo_inspector.info, sha256="e" * 64, version="2"))
        kw = {"line": "L", "station": "S", "camera_spec": "sim:x", "recipe": "r", "software_version": "0"}
        start_run(store, RunSpec(model_version_id=first, ok_below=1.0, ng_at=2.0, **kw))
        start_run(store, RunSpec(model_version_id=first, ok_below=1.0, ng_at=2.0, **kw))  # nothing changed
        start_run(store, RunSpec(model_version_id=other, ok_below=1.0, ng_at=3.0, **kw))
    logged = rows(
        db,
        "select run_id, kind, message from events "
        "where kind in ('model', 'thresholds') and message like '%changed%' order by id",
    )
    assert [(r, k) for r, k, _ in logged] == [(3, "model"), (3, "thresholds")]
    assert "NG at 2 to OK below 1 / NG at 3" in logged[1][2]
    trail = rows(db, "select who, action, target from audit_log order by id")
    assert trail == [("station", "model_changed", "r")]  # the model's own thresholds came with it: one entry, not two


def test_a_run_left_open_by_a_crash_is_ended_at_the_next_start(tmp_path, demo_inspector):
    import sqlite3

    with open_record(tmp_path / "a.db") as store:
        mv = store.model_version(demo_inspector.info)
        start_run(store, RunSpec("L", "S", "sim:x", "r", model_version_id=mv, software_version="0"))
        # (killed here: no end_run)
    open_record(tmp_path / "a.db").close()
    con = sqlite3.connect(tmp_path / "a.db")
    ended, state = con.execute("select ended_at, end_state from runs").fetchone()
    con.close()
    assert ended is not None and state == "crashed"


@pytest.mark.parametrize("shape", [(7, 5), (46, 113, 3), (1, 1), (3, 1, 3)])
def test_encoded_pngs_read_back_exactly_with_opencv(tmp_path, shape):
    import cv2

    from inspection.record.images import encode_png

    image = np.random.default_rng(len(shape)).integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path / "x.png"
    path.write_bytes(encode_png(image))
    back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(back if image.ndim == 2 else cv2.cvtColor(back, cv2.COLOR_BGR2RGB), image)


def test_without_isal_the_standard_zlib_writes_the_same_image(tmp_path, monkeypatch):
    import builtins

    import cv2

    from inspection.record.images import encode_png

    real_import = builtins.__import__

    def no_isal(name, *args, **kw):
        if name == "isal":
            raise ImportError("no isal here")
        return real_import(name, *args, **kw)

    image = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    monkeypatch.setattr(builtins, "__import__", no_isal)
    data = encode_png(image)
    monkeypatch.undo()
    (tmp_path / "z.png").write_bytes(data)
    assert np.array_equal(cv2.cvtColor(cv2.imread(str(tmp_path / "z.png")), cv2.COLOR_BGR2RGB), image)


def test_an_image_png_cannot_hold_is_refused_in_a_sentence():
    from inspection.record.images import encode_png

    with pytest.raises(StoreError, match="Cannot encode an image of shape"):
        encode_png(np.zeros((4, 4), np.float32))
