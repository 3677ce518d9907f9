"""The audit trail on a real SQLite file: the hash chain verifies after a mix of changes, and an
entry edited or deleted with the file in hand (triggers dropped, as an attacker would) is found."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import shutil
import sqlite3
import threading

import pytest

import resources
from inspection.access import audit, users
from inspection.access.runs import start_run
from inspection.engineering import recipe_edit
from inspection.engineering.relabel import relabel
from inspection.errors import AuthError, StoreError
from inspection.record.opening import open_record
from inspection.record.runs import RunSpec
from tests.fakes import FakeInspector
from tests.unit.inspection.test_users import PASSWORD, add_part, make_people


@pytest.fixture
def db(tmp_path, monkeypatch):
    """A record with a mix of audited changes: users made, a login, a failed login, relabels, a
    recipe's thresholds set, runs that changed recipe and thresholds, a logout."""
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "x.db"
    recipe_file = tmp_path / "line.toml"
    shutil.copyfile(resources.DEFAULT_RECIPE, recipe_file)
    with open_record(path) as store:
        make_people(store)
        eng = users.authenticate(store, "engineer1", PASSWORD)
        with pytest.raises(AuthError):
            users.authenticate(store, "engineer1", "not it")
        add_part(store)
        relabel(store, "p1", "OK", user=eng, comment="lubricant")
        relabel(store, "p1", "NG", user=eng, classes=("blob",))
        recipe_edit.set_thresholds(store, eng, recipe_file, ok_below=0.3, ng_at=0.5)
        mv = store.model_version(FakeInspector().info)
        kw = {"line": "L", "station": "S", "camera_spec": "sim:x", "model_version_id": mv, "software_version": "0"}
        start_run(store, RunSpec(recipe="line", ok_below=1.0, ng_at=2.0, **kw))
        start_run(store, RunSpec(recipe="line", ok_below=1.0, ng_at=3.0, **kw))
        users.logout(store, eng, "window closed")
    return path


def sql(db, *statements: str) -> list:
    con = sqlite3.connect(db)
    try:
        out = [con.execute(s).fetchall() for s in statements]
        con.commit()
        return out[-1]
    finally:
        con.close()


def check(db) -> audit.AuditCheck:
    with open_record(db) as store:
        return audit.verify(store)


def test_the_chain_verifies_after_a_mix_of_changes(db):
    result = check(db)
    rows = sql(db, "select id, who, action, target, detail_json, prev_hash, hash from audit_log order by id")
    assert result == audit.AuditCheck(
        True,
        len(rows),
        None,
        f"The audit trail is intact: {len(rows)} entries checked, the last {rows[-1][0]} with hash {rows[-1][6]}.",
    )
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0][5] == "0" * 64 and all(b[5] == a[6] for a, b in itertools.pairwise(rows))
    actions = [r[2] for r in rows]
    assert actions == ["user_created"] * 4 + [
        "login",
        "login_failed",
        "relabel",
        "relabel",
        "thresholds_changed",
        "recipe_changed",
        "thresholds_changed",
        "logout",
    ]
    by_action = {r[2]: r for r in rows}
    relabel = json.loads(rows[7][4])
    assert relabel["previous_verdict"] == "OK" and relabel["verdict"] == "NG" and relabel["classes"] == ["blob"]
    assert by_action["recipe_changed"][1] == "station" and json.loads(by_action["recipe_changed"][4])["new"] == "line"
    person, station = [r for r in rows if r[2] == "thresholds_changed"]
    assert station[1] == "station" and json.loads(station[4])["old"] == {"ok_below": 1.0, "ng_at": 2.0}
    assert person[1] == "engineer1" and json.loads(person[4]) == {
        "old": {"ok_below": "model", "ng_at": "model"},
        "new": {"ok_below": 0.3, "ng_at": 0.5},
    }


def test_an_edited_entry_is_found_by_its_id(db):
    bad = sql(db, "select id from audit_log where action = 'relabel' order by id limit 1")[0][0]
    sql(
        db,
        "drop trigger audit_log_no_update",
        f"update audit_log set detail_json = replace(detail_json, 'lubricant', 'looked fine') where id = {bad}",
    )
    result = check(db)
    assert not result.ok and result.first_bad_id == bad and result.entries == bad - 1
    assert f"Audit entry {bad} (relabel by engineer1) does not match its hash" in result.message


def test_an_entry_rewritten_with_a_fresh_hash_breaks_the_next_link(db):
    """An attacker who also recomputes the edited entry's hash is found at the entry after it."""
    bad, at, who, action, target, detail, prev = sql(
        db,
        "select id, at, who, action, target, detail_json, prev_hash from audit_log "
        "where action = 'relabel' order by id limit 1",
    )[0]
    forged = detail.replace("lubricant", "looked fine")
    digest = audit.entry_hash(prev, bad, dt.datetime.fromisoformat(at), who, action, target, forged)
    sql(
        db,
        "drop trigger audit_log_no_update",
        f"update audit_log set detail_json = '{forged}', hash = '{digest}' where id = {bad}",
    )
    result = check(db)
    assert not result.ok and result.first_bad_id == bad + 1 and f"does not chain to entry {bad}" in result.message


def test_a_deleted_entry_is_found(db):
    sql(db, "drop trigger audit_log_no_delete", "delete from audit_log where id = 6")
    result = check(db)
    assert not result.ok and result.first_bad_id == 7 and "missing: 6" in result.message


def test_the_triggers_refuse_update_and_delete(db):
    before = sql(db, "select * from audit_log order by id")
    for statement in (
        "update audit_log set who = 'someone' where id = 2",
        "delete from audit_log where id = 2",
        "delete from audit_log",
    ):
        with pytest.raises(sqlite3.DatabaseError, match="audit_log is append-only"):
            sql(db, statement)
    assert sql(db, "select * from audit_log order by id") == before


def test_a_change_whose_transaction_fails_leaves_no_entry(db):
    with open_record(db) as store:
        eng = users.authenticate(store, "engineer1", PASSWORD)
        before = sql(db, "select count(*) from audit_log")[0][0]
        with pytest.raises(RuntimeError):
            with audit.session(store) as s:
                audit.append(s, who="admin", action="user_created", target="ghost", detail={})
                raise RuntimeError("the change failed after its entry was added")
        with pytest.raises(StoreError, match="no part nope"):
            relabel(store, "nope", "OK", user=eng)
        assert sql(db, "select count(*) from audit_log")[0][0] == before
        users.logout(store, eng, "inactivity")  # the next entry takes the next id: no gap
        assert audit.verify(store).ok
        assert [e.id for e in audit.entries(store, 1)] == [before + 1]


def test_appends_from_many_threads_keep_one_chain(db):
    with open_record(db) as store:
        op = users.authenticate(store, "operator1", PASSWORD)
        before = audit.verify(store).entries

        def work() -> None:
            for _ in range(10):
                users.logout(store, op, "test")

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        result = audit.verify(store)
    assert result.ok and result.entries == before + 40
