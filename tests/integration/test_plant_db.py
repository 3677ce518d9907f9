"""The plant database on a private PostgreSQL server (tests/pg.py): the migrations there, stations
that record into their local SQLite buffer and forward to it (a server cut mid-run loses and
duplicates nothing), one shift report over two stations, and one-sentence errors for servers that
cannot be reached."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pypdf import PdfReader
from sqlalchemy import select, text

from camera import CameraSettings, TriggerMode
from camera.simulated import SimulatedCamera
from inspection.access import audit, users
from inspection.errors import StoreError
from inspection.line import Line, open_line
from inspection.record.forwarding import Forwarder, forwarder_of
from inspection.record.migrate import alembic_config
from inspection.record.opening import open_record, open_station_record
from inspection.record.schema import Base, ForwardState
from inspection.record.store import utcnow
from inspection.reports.figures import gather, shift_window
from inspection.reports.pdf import write_pdf
from inspection.settings.config import load_config
from inspection.settings.recipe import load_recipe
from tests.fakes import FakeInspector, free_port, sql, wait_for
from tests.integration.test_cli import assert_one_sentence_error, cli


def server(url, query, **params):
    with open_record(url, read_only=True) as store, store.engine.connect() as conn:
        return conn.execute(text(query), params).all()


def test_migrations_build_exactly_the_schema_on_postgres(pg_url):
    with open_record(pg_url) as store:
        with store.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert store.path is None and store.images_dir is None and "postgres" in store.name
    with open_record(pg_url) as store:  # again: nothing to migrate
        assert store.counts() == {"ok": 0, "ng": 0, "review": 0, "parts": 0}
        users.create_first_admin(store, "admin", "admin-password")  # an audited change
        for change in ("UPDATE audit_log SET who = 'y'", "DELETE FROM audit_log"):
            with pytest.raises(Exception, match="append-only"), store.engine.begin() as conn:
                conn.exec_driver_sql(change)
        check = audit.verify(store)
        assert check.ok and check.entries == 1, check.message
        cfg = alembic_config()
        with store.engine.begin() as conn:  # every migration goes down and up again on PostgreSQL too
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
            command.upgrade(cfg, "head")


def test_servers_that_cannot_be_reached_are_one_sentence_without_the_password(tmp_path):
    url = f"postgresql://lepton:s3cret-pw@127.0.0.1:{free_port()}/plant"
    for opener in (open_record, functools.partial(open_record, read_only=True)):
        with pytest.raises(
            StoreError, match=r"^The database server at 127\.0\.0\.1:\d+ cannot be reached: .*\.$"
        ) as err:
            opener(url)
        assert "s3cret-pw" not in str(err.value)
    for bad, message in (
        ("mysql://lepton:s3cret-pw@host/plant", "not supported"),
        ("postgresql+psycopg2://lepton:s3cret-pw@host/plant", "not supported"),
        ("postgresql://lepton:s3cret-pw@host:fivefour/plant", "port .* is not a number"),
        ("postgresql://lepton:s3cret@pw@127.0.0.1/plant", "has an '@' in its password or host: write it as %40"),
    ):
        with pytest.raises(StoreError, match=message) as err:
            open_record(bad)
        assert "s3cret" not in str(err.value)
    proc = cli("report", "--db", url, "--shift", "1", "--out", str(tmp_path / "r.pdf"), data_dir=tmp_path)
    assert_one_sentence_error(proc, "cannot be reached")
    assert "s3cret-pw" not in proc.stderr + proc.stdout
    proc = cli("shifts", "--db", url, data_dir=tmp_path)
    assert_one_sentence_error(proc, "cannot be reached")


def test_a_server_cut_mid_run_gets_every_part_exactly_once(pg_server, pg_url, tmp_path, samples, monkeypatch, caplog):
    """A real line (Basler's emulator into the demo model) records into its local buffer and
    forwards; the server is killed (immediate shutdown) while the line inspects, and started again."""
    caplog.set_level(logging.WARNING, logger="inspection.record.forwarding")
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path))  # the buffer: the default lepton.db there
    line = open_line(camera_spec=f"emu:{samples}", db=pg_url, device="cpu")
    forwarder = forwarder_of(line.store)
    assert forwarder is not None and line.store.path == tmp_path / "lepton.db"
    try:
        runner = line.start()
        assert wait_for(lambda: forwarder.status().forwarded >= 5 and runner.status().parts >= 5, 120)
        pg_server.stop("immediate")
        assert wait_for(lambda: not forwarder.status().connected, 60)
        cut_at = runner.status().parts
        assert wait_for(lambda: runner.status().parts >= cut_at + 10, 120)  # the line goes on without the server
        assert forwarder.status().backlog > 0 and "cannot be reached" in forwarder.status().last_error
        assert wait_for(lambda: forwarder.status().failed_tries >= 3, 60)  # (retried: 1 s, then 2 s)
        pg_server.start()
        forwarder.retry_now()
        assert wait_for(lambda: forwarder.status().connected, 120)
        assert wait_for(lambda: runner.status().parts >= cut_at + 15, 120)
        status = line.stop()
        assert forwarder.sync(120)
        assert forwarder.status().backlog == 0 and forwarder.status().last_error == ""
    finally:
        line.close()
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "inspection.record.forwarding" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1 and "cannot be reached" in warnings[0]  # one per outage, not one per retry
    buffer = tmp_path / "lepton.db"
    parts = sorted(p for (p,) in sql(buffer, "select part_id from inspections"))
    assert len(parts) == status.parts == status.recorded
    on_server = sorted(p for (p,) in server(pg_url, "select part_id from inspections"))
    assert on_server == parts  # every part, each once
    assert server(pg_url, "select count(*), min(end_state), min(station) from runs") == [
        (1, "stopped", load_config().station)
    ]
    assert server(pg_url, "select count(*) from events")[0][0] == sql(buffer, "select count(*) from events")[0][0]
    shift_ids = {i for (i,) in server(pg_url, "select distinct shift_id from inspections")}
    assert server(
        pg_url,
        "select count(*) from inspections i join runs r on r.id = i.run_id "
        "join model_versions m on m.id = i.model_version_id",
    )[0][0] == len(parts)
    assert len(shift_ids) >= 1


def station(name: str, url: str, buffer, samples, parts: int, recipe_file=None) -> Line:
    """A station named `name` (simulated camera, fake model) recording into `buffer`, forwarding to `url`."""
    config = load_config()
    config = dataclasses.replace(
        config,
        station=name,
        alarms=dataclasses.replace(config.alarms, min_free_disk_mb=0),
        retention=dataclasses.replace(config.retention, min_free_mb=0),
    )
    recipe = dataclasses.replace(
        load_recipe(recipe_file),
        camera=CameraSettings(pixel_format="Mono8", trigger=TriggerMode.SOFTWARE, frame_rate=200.0),
    )
    line = Line(
        store=open_station_record(url, buffer),
        config=config,
        recipe=recipe,
        camera_spec=f"sim:{samples}",
        inspector=FakeInspector(),
        cameras=[SimulatedCamera(samples)],
    )
    assert line.start(max_parts=parts).wait(60)
    line.stop()
    return line


def test_recipe_versions_are_numbered_plant_wide_on_the_server(pg_url, tmp_path, samples):
    """Two stations number the contents of recipe "prod" in the order each saw them; on the server one
    number is one content, whichever station inspected with it."""
    x, y = tmp_path / "x.toml", tmp_path / "y.toml"
    x.write_text('name = "prod"\n', encoding="utf-8")
    y.write_text('name = "prod"\n[verdict]\nmin_defect_area_px = 9\n', encoding="utf-8")
    a = station("press-1", pg_url, tmp_path / "a.db", samples, 2, x)  # x is press-1's version 1
    try:
        assert forwarder_of(a.store).sync(60)
    finally:
        a.close()
    b = station("press-2", pg_url, tmp_path / "b.db", samples, 2, y)  # y is press-2's version 1 ...
    try:
        b.change_recipe(x, by="test")  # ... and x its version 2
        b.start(max_parts=3).wait(60)
        b.stop()
        assert forwarder_of(b.store).sync(60)
    finally:
        b.close()
    assert sql(tmp_path / "b.db", "select recipe_version, count(*) from inspections group by 1 order by 1") == [
        (1, 2),
        (2, 3),
    ]
    versions = dict(server(pg_url, "select sha256, version from recipe_versions where name = 'prod'"))
    assert sorted(versions.values()) == [1, 2]
    by_content = server(
        pg_url,
        "select v.sha256, r.station, count(*) from inspections i join runs r on r.id = i.run_id "
        "join recipe_versions v on v.name = i.recipe and v.version = i.recipe_version group by 1, 2 order by 2, 1",
    )
    sha_x, sha_y = load_recipe(x).sha256, load_recipe(y).sha256
    assert sorted(by_content) == sorted([(sha_x, "press-1", 2), (sha_x, "press-2", 3), (sha_y, "press-2", 2)])
    assert versions == {sha_x: 1, sha_y: 2}
    assert server(pg_url, "select distinct recipe_version from runs where station = 'press-2' order by 1") == [
        (1,),
        (2,),
    ]


def test_two_stations_forward_to_one_server_and_one_report_spans_both(pg_url, tmp_path, samples):
    a = station("press-1", pg_url, tmp_path / "a.db", samples, 6)
    b = station("press-2", pg_url, tmp_path / "b.db", samples, 4)
    try:
        assert forwarder_of(a.store).sync(60) and forwarder_of(b.store).sync(60)
    finally:
        a.close()
        b.close()
    by_station = {
        s: n
        for s, n in server(
            pg_url, "select r.station, count(*) from inspections i join runs r on r.id = i.run_id group by 1"
        )
    }
    assert by_station == {"press-1": 6, "press-2": 4}
    (shift_id,) = {i for (i,) in server(pg_url, "select distinct shift_id from inspections")}  # one shift on the server
    with open_record(pg_url, read_only=True) as plant:
        data = gather(plant, shift_window(plant, shift_id), load_config().shifts.tz)
    assert data.inspected == 10 and data.stations == ("press-1", "press-2")
    rows = {r["station"]: r for r in data.per_station}
    for name, db in (("press-1", tmp_path / "a.db"), ("press-2", tmp_path / "b.db")):
        counts = dict(sql(db, "select verdict, count(*) from inspections group by verdict"))
        assert (rows[name]["parts"], rows[name]["ok"], rows[name]["ng"], rows[name]["review"]) == (
            sum(counts.values()),
            counts.get("OK", 0),
            counts.get("NG", 0),
            counts.get("REVIEW", 0),
        )
    assert data.worst and all(w["image"] is None for w in data.worst)  # images stay at their stations
    pages = write_pdf(data, tmp_path / "plant.pdf")
    assert pages >= 2
    pdf = "\n".join(p.extract_text() for p in PdfReader(tmp_path / "plant.pdf").pages)
    assert "press-1" in pdf and "press-2" in pdf and "image at its station" in pdf
    proc = cli(
        "report", "--db", pg_url, "--shift", str(shift_id), "--json", str(tmp_path / "r.json"), data_dir=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    figures = json.loads((tmp_path / "r.json").read_text())
    assert figures["inspected"] == 10 and [r["station"] for r in figures["per_station"]] == ["press-1", "press-2"]
    proc = cli("shifts", "--db", pg_url, "--json", data_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [s["inspected"] for s in json.loads(proc.stdout)] == [10]


def test_rows_sent_again_after_a_lost_position_are_not_duplicated(pg_url, tmp_path, samples):
    """A kill between the server's commit and the buffer's note of it: the next forwarder sends the
    rows again, and the server keeps one of each."""
    line = station("press-1", pg_url, tmp_path / "a.db", samples, 5)
    try:
        assert forwarder_of(line.store).sync(60)
        before = server(
            pg_url,
            "select (select count(*) from inspections), (select count(*) from events), (select count(*) from runs)",
        )
        with line.store.session() as s:  # the position lost
            s.execute(ForwardState.__table__.delete())
            s.commit()
        again = Forwarder(line.store, pg_url)
        assert again.status().backlog > 0
        again.start()
        assert again.sync(60)
        again.close()
        assert again.status().forwarded > 0 and again.status().backlog == 0
    finally:
        line.close()
    assert (
        server(
            pg_url,
            "select (select count(*) from inspections), (select count(*) from events), (select count(*) from runs)",
        )
        == before
    )
    with open_record(tmp_path / "a.db") as store, store.session() as s:
        assert {n for (n,) in s.execute(select(ForwardState.table_name))} >= {"runs", "inspections", "events"}


def test_a_station_starts_and_inspects_while_the_server_cannot_be_reached(tmp_path, samples):
    url = f"postgresql://lepton:s3cret-pw@127.0.0.1:{free_port()}/plant"
    line = station("press-1", url, tmp_path / "a.db", samples, 5)  # (inspects and records: see station())
    try:
        forwarder = forwarder_of(line.store)
        assert wait_for(lambda: forwarder.status().failed_tries >= 1, 60)
        tries = forwarder.status().failed_tries
        forwarder.retry_now()  # a try begun after the parts were recorded (its backlog counts them)
        assert wait_for(lambda: forwarder.status().failed_tries > tries, 60)
        status = forwarder.status()
        assert not status.connected and status.forwarded == 0 and status.backlog >= 5
        assert (
            status.last_error.startswith("The database server at 127.0.0.1:")
            and "s3cret-pw" not in status.last_error + status.server
        )
    finally:
        line.close()  # (returns although the server never answered)
    assert sql(tmp_path / "a.db", "select count(*) from inspections") == [(5,)]


def test_an_alarm_acknowledged_after_it_was_forwarded_is_acknowledged_on_the_server(pg_url, tmp_path, samples):
    line = station("press-1", pg_url, tmp_path / "a.db", samples, 2)
    try:
        line.store.log_event("disk", "Free disk space is low.", level="alarm")
        assert forwarder_of(line.store).sync(60)
        assert server(pg_url, "select acknowledged_at from events where kind = 'disk'") == [(None,)]
        with line.store.session() as s:  # what the alarm monitor writes when an operator acknowledges it
            s.execute(text("update events set acknowledged_at = :at where kind = 'disk'"), {"at": utcnow()})
            s.commit()
        assert forwarder_of(line.store).sync(60)
    finally:
        line.close()
    (acked,) = sql(tmp_path / "a.db", "select acknowledged_at from events where kind = 'disk'")[0]
    (on_server,) = server(pg_url, "select acknowledged_at from events where kind = 'disk'")[0]
    assert on_server is not None and str(on_server).replace("T", " ").startswith(acked[:19])
