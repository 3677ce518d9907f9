"""Shift reports from databases filled by real runs (Basler's emulator playing the bundled real
images into the demo model): the PDF read back with pypdf, every figure checked against an
independent SQL count, the pages rendered with pypdfium2 and checked not blank; the CSV and JSON
exports; an empty shift, an all-OK shift and a 100,000-part shift. The figures, pages and shifts are
also checked read from a plant database on PostgreSQL that the station's rows were forwarded to."""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
import re
import shutil
import sqlite3

import numpy as np
import pypdfium2
import pytest
from pypdf import PdfReader

from bench.synthetic import add_parts
from inspection.engineering.relabel import relabel
from inspection.line import open_line
from inspection.record.opening import open_record
from inspection.record.server import is_url
from inspection.reports.figures import CSV_COLUMNS, gather, shift_window, time_window
from inspection.reports.pdf import write_pdf
from inspection.settings.config import load_config
from tests.integration.test_cli import assert_one_sentence_error, cli
from tests.pg import forward_all


def sql(db, query, *params):
    con = sqlite3.connect(db)
    try:
        return con.execute(query, params).fetchall()
    finally:
        con.close()


def on_backend(db, backend, tmp_path, request) -> str:
    """The --db a report reads: the station's file `db` itself, or the URL of a plant database on
    PostgreSQL that a copy of it was forwarded to."""
    if backend == "sqlite":
        return str(db)
    url = request.getfixturevalue("pg_url")
    copy = tmp_path / "station.db"
    copy.write_bytes(db.read_bytes())
    with open_record(copy) as store:
        forward_all(store, url)
    return url


def the_shift(db: str) -> int:
    """The one shift of a record with parts."""
    if not is_url(db):
        (shift_id,) = {i for (i,) in sql(db, "select distinct shift_id from inspections")}
        return shift_id
    with open_record(db, read_only=True) as store, store.engine.connect() as conn:
        (shift_id,) = {i for (i,) in conn.exec_driver_sql("select distinct shift_id from inspections")}
        return shift_id


def engineers(store, *names):
    """Users with the engineer role (who may relabel), made by a first admin."""
    from inspection.access import users

    admin = users.create_first_admin(store, "admin", "admin-password")
    return [users.create_user(store, admin, name, users.Role.ENGINEER, "engineer-password") for name in names]


def run_line(db, samples, parts, recipe=None):
    line = open_line(camera_spec=f"emu:{samples}", db=db, device="cpu", recipe=recipe)
    try:
        assert line.start(max_parts=parts).wait(120)
        line.stop()
    finally:
        line.close()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, samples):
    db = tmp_path_factory.mktemp("report") / "line.db"
    run_line(db, samples, 40)
    return db


def pdf_text(path):
    return [page.extract_text() for page in PdfReader(path).pages]


def figure(text, name):
    m = re.search(rf"^{name}\s+(\d+)$", text, re.MULTILINE)  # (pypdf gives a table cell per line)
    assert m, f"{name} not found in:\n{text[:2000]}"
    return int(m.group(1))


def test_report_figures_match_the_database(recorded, tmp_path, backend, request):
    db = on_backend(recorded, backend, tmp_path, request)
    (shift_id,) = {i for (i,) in sql(recorded, "select distinct shift_id from inspections")}
    out, rows_csv, figures_json = tmp_path / "r.pdf", tmp_path / "r.csv", tmp_path / "r.json"
    proc = cli(
        "report",
        "--db",
        db,
        "--shift",
        str(the_shift(db)),
        "--out",
        str(out),
        "--csv",
        str(rows_csv),
        "--json",
        str(figures_json),
        data_dir=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    pages = pdf_text(out)
    text = "\n".join(pages)
    counts = dict(
        sql(recorded, "select verdict, count(*) from inspections where shift_id = ? group by verdict", shift_id)
    )
    total = sum(counts.values())
    assert total == 40
    assert figure(text, "Inspected") == total
    assert figure(text, "OK") == counts.get("OK", 0)
    assert figure(text, "NG") == counts.get("NG", 0)
    assert figure(text, "REVIEW") == counts.get("REVIEW", 0)
    assert re.search(rf"First-pass yield\s+{100 * counts.get('OK', 0) / total:.1f} %", text)
    for k, page in enumerate(pages, start=1):
        assert f"page {k} of {len(pages)}" in page
    assert "Checked and approved (QA):" in pages[-1]
    name, start, end = sql(recorded, "select name, start_at, end_at from shifts where id = ?", shift_id)[0]
    assert f"Quality report - Shift {name}" in pages[0]
    model = sql(recorded, "select name, version, substr(sha256, 1, 12) from model_versions")[0]
    assert f"{model[0]} v{model[1]}" in text and model[2] in text

    f = json.loads(figures_json.read_text())
    assert (f["inspected"], f["ok"], f["ng"], f["review"]) == (
        total,
        counts.get("OK", 0),
        counts.get("NG", 0),
        counts.get("REVIEW", 0),
    )
    pareto = dict(
        sql(
            recorded,
            "select j.value, count(distinct i.id) from inspections i, json_each(i.classes_json) j "
            "where i.verdict = 'NG' group by j.value",
        )
    )
    assert {p["class"]: p["ng_parts"] for p in f["ng_pareto"]} == pareto
    hourly = sql(
        recorded, "select strftime('%H', ts), count(*), sum(verdict = 'NG') from inspections group by 1 order by 1"
    )
    assert [(h["parts"], h["ng"]) for h in f["ng_rate_per_hour"]] == [(n, g) for _, n, g in hourly]
    assert sum(b["parts"] for b in f["score_histogram"]) == sql(recorded, "select count(score) from inspections")[0][0]
    assert f["thresholds_in_force"] == [
        {"ok_below": a, "ng_at": b} for a, b in sql(recorded, "select distinct ok_below, ng_at from runs")
    ]
    worst = sql(recorded, "select part_id from inspections where verdict != 'OK' order by score desc, id limit 12")
    assert [w["part_id"] for w in f["worst_rejects"]] == [p for (p,) in worst]
    assert all(w["part_id"] in pages[-1] or w["part_id"] in text for w in f["worst_rejects"])

    with rows_csv.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == total + 1
    assert sorted(r[0] for r in rows[1:]) == sorted(p for (p,) in sql(recorded, "select part_id from inspections"))


def test_pages_render_and_are_not_blank(recorded, tmp_path, backend, request):
    db = on_backend(recorded, backend, tmp_path, request)
    with open_record(db, read_only=True) as store:
        data = gather(store, shift_window(store, the_shift(db)), load_config().shifts.tz)
    pages = write_pdf(data, tmp_path / "r.pdf")
    pdf = pypdfium2.PdfDocument(str(tmp_path / "r.pdf"))
    assert len(pdf) == pages >= 2
    for k in range(len(pdf)):
        image = np.asarray(pdf[k].render(scale=0.5).to_pil().convert("L"))
        ink = (image < 200).mean()
        assert ink > 0.01, f"page {k + 1} is nearly blank ({ink:.3%} dark pixels)"
    pdf.close()


def test_empty_period_and_all_ok_shift(tmp_path, samples, backend, request):
    recipe = tmp_path / "all_ok.toml"
    recipe.write_text('name = "all-ok"\n[verdict]\nok_below = 1e9\nng_at = 2e9\n')
    run_line(tmp_path / "ok.db", samples, 8, recipe=recipe)
    db = on_backend(tmp_path / "ok.db", backend, tmp_path, request)
    store = open_record(db, read_only=True)
    try:
        tz = load_config().shifts.tz
        data = gather(store, shift_window(store, the_shift(db)), tz)
        assert (data.inspected, data.ok, data.ng, data.review, data.pareto, data.worst) == (8, 8, 0, 0, (), ())
        write_pdf(data, tmp_path / "ok.pdf")
        text = "\n".join(pdf_text(tmp_path / "ok.pdf"))
        assert figure(text, "Inspected") == 8 and figure(text, "NG") == 0
        assert "No NG parts." in text and "No rejects." in text and re.search(r"^Yield\s+100.0 %", text, re.MULTILINE)
        empty = gather(store, time_window("2020-01-01T06:00", "2020-01-01T14:00", tz), tz)
        assert empty.inspected == 0 and empty.hours == () and empty.histogram == ()
        write_pdf(empty, tmp_path / "empty.pdf")
        text = "\n".join(pdf_text(tmp_path / "empty.pdf"))
        assert figure(text, "Inspected") == 0 and "No parts were inspected in this period." in text
    finally:
        store.close()


def test_a_100000_part_shift(recorded, tmp_path):
    """Rows copied from the real run (their images included), spread over eight hours with known
    verdicts; the report's figures still match SQL."""
    db = tmp_path / "big.db"
    db.write_bytes(recorded.read_bytes())
    shift_id = add_parts(db, 100_000)
    store = open_record(db)
    try:
        data = gather(store, shift_window(store, shift_id), load_config().shifts.tz)
        pages = write_pdf(data, tmp_path / "big.pdf")
    finally:
        store.close()
    counts = dict(sql(db, "select verdict, count(*) from inspections where shift_id = ? group by verdict", shift_id))
    assert (data.inspected, data.ok, data.ng, data.review) == (100_000, counts["OK"], counts["NG"], counts["REVIEW"])
    assert sum(h.parts for h in data.hours) == 100_000 and sum(h.ng for h in data.hours) == counts["NG"]
    text = "\n".join(pdf_text(tmp_path / "big.pdf"))
    assert figure(text, "Inspected") == 100_000 and pages >= 2


def test_bad_report_requests_are_one_sentence(recorded, tmp_path):
    assert_one_sentence_error(
        cli("report", "--db", str(recorded), "--shift", "999", "--out", str(tmp_path / "x.pdf"), data_dir=tmp_path),
        "no shift 999",
    )
    assert_one_sentence_error(
        cli(
            "report",
            "--db",
            str(recorded),
            "--from",
            "2026-11-27T06:00",
            "--out",
            str(tmp_path / "x.pdf"),
            data_dir=tmp_path,
        ),
        "--from needs --to",
    )
    assert_one_sentence_error(
        cli(
            "report",
            "--db",
            str(recorded),
            "--from",
            "yesterday",
            "--to",
            "today",
            "--out",
            str(tmp_path / "x.pdf"),
            data_dir=tmp_path,
        ),
        "not an ISO 8601 time",
    )
    assert_one_sentence_error(
        cli(
            "report",
            "--db",
            str(tmp_path / "none.db"),
            "--shift",
            "1",
            "--out",
            str(tmp_path / "x.pdf"),
            data_dir=tmp_path,
        ),
        "no database",
    )
    assert_one_sentence_error(
        cli(
            "report",
            "--db",
            str(recorded),
            "--shift",
            "1",
            "--out",
            str(tmp_path / "missing" / "x.pdf"),
            data_dir=tmp_path,
        ),
        "does not exist",
    )
    proc = cli("shifts", "--db", str(recorded), "--json", data_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (s,) = json.loads(proc.stdout)
    assert s["inspected"] == sql(recorded, "select count(*) from inspections")[0][0]


def test_parts_on_the_hour_odd_messages_and_a_station_holding_the_database(recorded, tmp_path):
    """Parts stamped exactly on the hour count in that hour; an event message with markup-like text
    does not break the PDF; the report reads a database the station has open (and locked)."""
    db = tmp_path / "edges.db"
    db.write_bytes(recorded.read_bytes())
    con = sqlite3.connect(db)
    try:
        cols = [c[1] for c in con.execute("pragma table_info(inspections)") if c[1] != "id"]
        template = dict(
            zip(cols, con.execute(f"select {', '.join(cols)} from inspections limit 1").fetchone(), strict=True)
        )
        shift_id, start = con.execute("select id, start_at from shifts limit 1").fetchone()
        t0 = dt.datetime.fromisoformat(start)
        # Two hours of the shift that the real parts (recorded just now) are not in.
        real = {
            int((dt.datetime.fromisoformat(ts) - t0) // dt.timedelta(hours=1))
            for (ts,) in con.execute("select ts from inspections")
        }
        h1, h2 = [k for k in range(1, 8) if k not in real][:2]
        for k, verdict in ((h1, "NG"), (h2, "OK"), (h2, "OK")):
            row = {
                **template,
                "part_id": f"edge-{k}-{verdict}-{random.random()}",
                "verdict": verdict,
                "part_verdict": verdict,
                "ts": (t0 + dt.timedelta(hours=k)).isoformat(sep=" ", timespec="microseconds"),
            }
            con.execute(
                f"insert into inspections ({', '.join(cols)}) values ({', '.join('?' * len(cols))})",
                [row[c] for c in cols],
            )
        con.execute(
            "insert into events (ts, level, kind, message) values (?, 'warning', 'camera', ?)",
            ((t0 + dt.timedelta(minutes=5)).isoformat(sep=" "), "Camera said <b> x </b> & a </i> tag"),
        )
        con.commit()
    finally:
        con.close()
    station = open_record(db)  # the station holds the database
    try:
        proc = cli(
            "report",
            "--db",
            str(db),
            "--shift",
            str(shift_id),
            "--out",
            str(tmp_path / "e.pdf"),
            "--json",
            str(tmp_path / "e.json"),
            data_dir=tmp_path,
        )
    finally:
        station.close()
    assert proc.returncode == 0, proc.stderr
    hours = {
        h["hour_utc"]: (h["parts"], h["ng"]) for h in json.loads((tmp_path / "e.json").read_text())["ng_rate_per_hour"]
    }

    def at(k: int) -> str:
        return (t0 + dt.timedelta(hours=k)).replace(tzinfo=dt.UTC).isoformat()

    assert hours[at(h1)] == (1, 1) and hours[at(h2)] == (2, 0)
    starts = sorted(dt.datetime.fromisoformat(h) for h in hours)
    assert starts == [
        starts[0] + dt.timedelta(hours=k) for k in range(len(starts))
    ]  # every hour between the first and the last
    assert sum(n for n, _ in hours.values()) == sql(db, "select count(*) from inspections")[0][0]
    assert "Camera said <b> x </b> & a </i> tag" in "\n".join(pdf_text(tmp_path / "e.pdf")).replace("\n", " ")


def test_relabels_add_history_and_feed_the_report(recorded, tmp_path):
    db = tmp_path / "relabel.db"
    db.write_bytes(recorded.read_bytes())
    ng = [p for (p,) in sql(db, "select part_id from inspections where verdict = 'NG' order by id")]
    ok = [p for (p,) in sql(db, "select part_id from inspections where verdict = 'OK' order by id")]
    before = sql(db, "select part_id, verdict, score from inspections order by id")
    store = open_record(db)
    try:
        eng, lead = engineers(store, "eng", "lead")
        relabel(store, ng[0], "OK", user=eng, comment="lubricant, not pitting")  # false reject
        relabel(store, ng[1], "NG", user=eng, classes=("pitting",))  # confirmed
        relabel(store, ng[2], "NG", user=eng, classes=("pitting",))
        relabel(store, ng[2], "OK", user=lead, comment="second look")  # the latest label counts
        mask = np.zeros((460, 1130), bool)
        mask[200:210, 300:320] = True
        relabel(store, ok[0], "NG", user=eng, classes=("pitting",), mask=mask)  # an escape found
        with pytest.raises(Exception, match="OK or NG"):
            relabel(store, ok[1], "REVIEW", user=eng)
        (shift_id,) = {i for (i,) in sql(db, "select distinct shift_id from inspections")}
        data = gather(store, shift_window(store, shift_id), load_config().shifts.tz)
        write_pdf(data, tmp_path / "r.pdf")
    finally:
        store.close()
    assert (
        sql(db, "select part_id, verdict, score from inspections order by id") == before
    )  # the model's verdicts untouched
    history = sql(
        db,
        "select i.part_id, r.previous_verdict, r.verdict, r.who "
        "from relabels r join inspections i on i.id = r.inspection_id "
        "where i.part_id = ? order by r.id",
        ng[2],
    )
    assert history == [(ng[2], "NG", "NG", "eng"), (ng[2], "NG", "OK", "lead")]
    assert (tmp_path / sql(db, "select mask_path from relabels where mask_path is not null")[0][0]).is_file()
    assert data.relabels == {
        "relabelled": 4,
        "confirmed_ng": 1,
        "false_rejects": 2,
        "escapes_found": 1,
        "confirmed_ok": 0,
        "review_to_ok": 0,
        "review_to_ng": 0,
    }
    assert data.good_in_the_end == data.ok - 1 + 2 and data.first_pass_yield_pct == pytest.approx(
        100 * data.ok / data.inspected
    )
    text = "\n".join(pdf_text(tmp_path / "r.pdf"))
    assert (
        figure(text, "False rejects \\(overkill\\)") == 2
        and figure(text, "Escapes found") == 1
        and figure(text, "Confirmed NG") == 1
    )


def test_labelled_parts_export_as_a_dataset_both_layouts(recorded, tmp_path):
    from models.datasets import load_dataset, read_mask

    db = tmp_path / "labels.db"
    db.write_bytes(recorded.read_bytes())
    shutil.copytree(
        recorded.parent / f"{recorded.stem}-images", tmp_path / f"{recorded.stem}-images"
    )  # image paths are relative to the record's folder
    ng = [
        p
        for (p,) in sql(
            db, "select part_id from inspections where verdict = 'NG' and image_path is not null order by id"
        )
    ]
    ok = [
        p
        for (p,) in sql(
            db, "select part_id from inspections where verdict = 'OK' and image_path is not null order by id"
        )
    ]
    store = open_record(db)
    try:
        mask = np.zeros((460, 1130), bool)
        mask[200:210, 300:320] = True
        (eng,) = engineers(store, "eng")
        relabel(store, ng[0], "NG", user=eng, classes=("pitting",), mask=mask)
        relabel(store, ng[1], "OK", user=eng)
        relabel(store, ok[0], "NG", user=eng, classes=("scratch",))
    finally:
        store.close()
    out = tmp_path / "ds"
    proc = cli("dataset", "export", "--db", str(db), "--out", str(out), data_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ds = load_dataset(out)
    by_group = {s.group: s for s in ds.samples}
    assert set(by_group) == {ng[0], ng[1], ok[0]}
    assert (by_group[ng[0]].label, by_group[ng[0]].cls) == ("defect", "pitting") and by_group[ng[1]].label == "good"
    assert by_group[ok[0]].cls == "scratch" and by_group[ok[0]].mask is None
    assert read_mask(by_group[ng[0]], (460, 1130)).sum() == mask.sum()
    mv = load_dataset(out / "mvtec")
    assert mv.format == "mvtec" and sorted(s.cls for s in mv.samples) == ["good", "pitting", "scratch"]
    assert_one_sentence_error(
        cli("dataset", "export", "--db", str(db), "--out", str(out), data_dir=tmp_path), "not an empty folder"
    )
