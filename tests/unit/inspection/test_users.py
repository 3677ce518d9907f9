"""Users, roles and permissions on a real SQLite file: the whole permission matrix, checked through
`require` and through the core functions themselves; password hashing; account changes."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3

import pytest

import resources
from inspection.access import audit, users
from inspection.access.runs import start_run
from inspection.access.users import Permission as P
from inspection.access.users import Role
from inspection.engineering import model_registry, recipe_edit
from inspection.engineering.relabel import relabel
from inspection.errors import AuthError, ConfigError, PermissionDenied
from inspection.record.opening import open_record
from inspection.record.runs import RunSpec
from inspection.record.schema import Inspection
from inspection.record.store import shift_id, utcnow
from inspection.settings.recipe import load_recipe
from tests.fakes import FakeInspector

PASSWORD = "correct horse"

# Written out from the issue, apart from ROLE_PERMISSIONS, so that a change to the matrix shows here.
EXPECTED = {
    Role.OPERATOR: {P.RUN_LINE, P.ACK_ALARMS},
    Role.ENGINEER: {
        P.RUN_LINE,
        P.ACK_ALARMS,
        P.RELABEL,
        P.TRAIN,
        P.PROMOTE,
        P.CHANGE_THRESHOLDS,
        P.EXPORT_DATASET,
        P.EXPORT_REPORT,
    },
    Role.QA: {P.ACK_ALARMS, P.EXPORT_REPORT, P.EXPORT_DATASET},
    Role.ADMIN: set(P),
}
MAY_CHANGE_QUALITY = {Role.ENGINEER, Role.ADMIN}  # relabel, promote / roll back, change thresholds


def make_people(store) -> dict[Role, users.User]:
    """The first admin and one user of each other role."""
    admin = users.create_first_admin(store, "admin", PASSWORD)
    people = {Role.ADMIN: admin}
    for role in (Role.OPERATOR, Role.ENGINEER, Role.QA):
        people[role] = users.create_user(store, admin, role.value + "1", role, PASSWORD)
    return people


def add_part(store, part_id: str = "p1") -> None:
    """One inspected part (NG), as the writer would have recorded it."""
    mv = store.model_version(FakeInspector().info)
    run = start_run(store, RunSpec("L", "S", "sim:x", "r", model_version_id=mv, software_version="0"))
    now = utcnow()
    with store.session() as s:
        sid = shift_id(s, "A", now, now)
        s.add(
            Inspection(
                part_id=part_id,
                run_id=run,
                seq=1,
                ts=now,
                shift_id=sid,
                camera_id="c",
                frame_id=1,
                recipe="r",
                model_version_id=mv,
                score=130.0,
                verdict="NG",
                classes_json='["blob"]',
                areas_json='{"blob": 5}',
                image_path=None,
                mask_path=None,
                t_grab_ms=0.0,
                t_queue_ms=0.0,
                t_preprocess_ms=0.0,
                t_infer_ms=0.0,
                t_decide_ms=0.0,
                latency_ms=0.0,
                error=None,
            )
        )
        s.commit()


def count(db, table: str) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute(f"select count(*) from {table}").fetchone()[0]
    finally:
        con.close()


@pytest.fixture(scope="module")
def crew(tmp_path_factory):
    store = open_record(tmp_path_factory.mktemp("crew") / "x.db")
    yield store, make_people(store)
    store.close()


def test_the_matrix_is_the_issues():
    assert {role: set(perms) for role, perms in users.ROLE_PERMISSIONS.items()} == EXPECTED


@pytest.mark.parametrize("permission", list(P))
@pytest.mark.parametrize("role", list(Role))
def test_require_grants_exactly_the_matrix(crew, role, permission):
    store, people = crew
    user = people[role]
    if permission in EXPECTED[role]:
        assert users.require(store, user, permission) == user
    else:
        with pytest.raises(PermissionDenied) as err:
            users.require(store, user, permission)
        assert f"User {user.name} ({role.value}) may not {permission.value}" in str(err.value)
        assert str(err.value).count(".") == 1 and "\n" not in str(err.value)  # one sentence


@pytest.mark.parametrize("role", list(Role))
def test_core_functions_check_the_role_and_a_refusal_leaves_no_row(role, tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path / "data"))
    db = tmp_path / "x.db"
    recipe_file = tmp_path / "line.toml"
    shutil.copyfile(resources.DEFAULT_RECIPE, recipe_file)
    with open_record(db) as store:
        user = make_people(store)[role]
        add_part(store)
        entries, recipe_text = count(db, "audit_log"), recipe_file.read_text()
        recipe = load_recipe()
        if role in MAY_CHANGE_QUALITY:
            relabel(store, "p1", "OK", user=user, comment="fine")
            # Past the permission check: the model's own package already runs, and there is no promotion to undo.
            with pytest.raises(ConfigError, match="already runs"):
                model_registry.promote(store, recipe, recipe.model, user=user)
            with pytest.raises(ConfigError, match="nothing to roll back"):
                model_registry.rollback(store, recipe, user=user)
            recipe_edit.set_thresholds(store, user, recipe_file, ng_at=0.9)
            assert count(db, "relabels") == 1 and load_recipe(recipe_file).ng_at == 0.9
            assert [e.action for e in audit.entries(store, 2)] == ["thresholds_changed", "relabel"]
            return
        for change in (
            lambda: relabel(store, "p1", "OK", user=user),
            lambda: model_registry.promote(store, recipe, tmp_path / "never-read.lpkg", user=user),
            lambda: model_registry.rollback(store, recipe, user=user),
            lambda: recipe_edit.set_thresholds(store, user, recipe_file, ok_below=0.1, ng_at=0.2),
        ):
            with pytest.raises(PermissionDenied, match=f"User {user.name} \\({role.value}\\) may not"):
                change()
    assert count(db, "relabels") == 0 and count(db, "model_promotions") == 0 and count(db, "audit_log") == entries
    assert recipe_file.read_text() == recipe_text and not list(tmp_path.glob(".line.toml*"))  # no file left aside


def test_a_demoted_or_disabled_user_is_refused_at_once(tmp_path):
    with open_record(tmp_path / "x.db") as store:
        people = make_people(store)
        add_part(store)
        eng = users.authenticate(store, "engineer1", PASSWORD)  # logged in (a window keeps this User)
        relabel(store, "p1", "NG", user=eng, classes=("blob",))
        users.set_role(store, people[Role.ADMIN], "engineer1", Role.OPERATOR)
        with pytest.raises(PermissionDenied, match="engineer1 \\(operator\\) may not relabel parts"):
            relabel(store, "p1", "OK", user=eng)  # the same User object: the core reads the role afresh
        users.set_role(store, people[Role.ADMIN], "engineer1", Role.ENGINEER)
        relabel(store, "p1", "OK", user=eng)
        users.set_active(store, people[Role.ADMIN], "engineer1", False)
        with pytest.raises(PermissionDenied, match="disabled"):
            relabel(store, "p1", "NG", user=eng)
        with pytest.raises(AuthError):
            users.authenticate(store, "engineer1", PASSWORD)
        users.set_active(store, people[Role.ADMIN], "engineer1", True)
        assert users.authenticate(store, "engineer1", PASSWORD) == eng
        actions = [e.action for e in reversed(audit.entries(store, 100))]
    assert actions.count("relabel") == 2 and {"role_changed", "user_disabled", "user_enabled"} <= set(actions)
    assert count(tmp_path / "x.db", "relabels") == 2


def test_passwords_are_salted_slow_hashes_that_name_their_parameters():
    a, b = users.hash_password(PASSWORD), users.hash_password(PASSWORD)
    assert a != b  # a fresh salt each time
    scheme, params, salt, key = a.split("$")
    assert (scheme, params) == ("scrypt", "n=16384,r=8,p=1")
    assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(key)) == 32
    assert users.verify_password(PASSWORD, a) and users.verify_password(PASSWORD, b)
    assert not users.verify_password(PASSWORD + "!", a) and not users.verify_password("", a)
    assert not users.verify_password(PASSWORD, "scrypt$n=16384$not-base64$") and not users.verify_password(
        PASSWORD, "plain"
    )


def test_the_first_admin_is_made_once_and_there_is_no_default_account(tmp_path):
    with open_record(tmp_path / "x.db") as store:
        assert not users.has_users(store)
        for name in ("admin", "root"):
            with pytest.raises(AuthError):
                users.authenticate(store, name, "admin")
        with pytest.raises(AuthError, match="at least 8 characters"):
            users.create_first_admin(store, "boss", "short")
        boss = users.create_first_admin(store, "boss", PASSWORD)
        assert boss.role == Role.ADMIN and users.has_users(store)
        with pytest.raises(AuthError, match="first admin exists already"):
            users.create_first_admin(store, "mallory", PASSWORD)
        with pytest.raises(AuthError, match="already a user boss"):
            users.create_user(store, boss, "boss", Role.QA, PASSWORD)
        with pytest.raises(AuthError, match="no role 'chief'"):
            users.create_user(store, boss, "chief", "chief", PASSWORD)
        with pytest.raises(AuthError, match="last active admin"):
            users.set_role(store, boss, "boss", Role.ENGINEER)
        with pytest.raises(AuthError, match="last active admin"):
            users.set_active(store, boss, "boss", False)
        assert [(a.name, a.role, a.active, a.created_by) for a in users.list_users(store)] == [
            ("boss", Role.ADMIN, True, "boss")
        ]


def test_logins_and_failures_are_audited_without_saying_which_was_wrong(tmp_path):
    with open_record(tmp_path / "x.db") as store:
        people = make_people(store)
        users.set_active(store, people[Role.ADMIN], "qa1", False)
        messages = []
        for name, password in (("operator1", "wrong password"), ("nobody", PASSWORD), ("qa1", PASSWORD)):
            with pytest.raises(AuthError) as err:
                users.authenticate(store, name, password)
            messages.append(str(err.value).replace(name, "NAME"))
        assert len(set(messages)) == 1 and "user name or password is wrong" in messages[0]
        op = users.authenticate(store, " operator1 ", PASSWORD)
        users.logout(store, op, "inactivity")
        rows = [(e.who, e.action, e.target, json.loads(e.detail_json)) for e in reversed(audit.entries(store, 5))]
    assert rows[:3] == [
        ("station", "login_failed", "operator1", {"reason": "wrong password"}),
        (
            "station",
            "login_failed",
            "(unknown user)",
            {"reason": "unknown user"},
        ),  # (maybe a password typed as a name: not kept)
        ("station", "login_failed", "qa1", {"reason": "account disabled"}),
    ]
    assert rows[3:] == [
        ("operator1", "login", "operator1", {"role": "operator"}),
        ("operator1", "logout", "operator1", {"reason": "inactivity"}),
    ]


def test_passwords_change_by_their_owner_or_an_admin_and_never_reach_the_audit_trail(tmp_path):
    db = tmp_path / "x.db"
    with open_record(db) as store:
        people = make_people(store)
        op = people[Role.OPERATOR]
        with pytest.raises(AuthError, match="old password is wrong"):
            users.set_password(store, op, "operator1", "new password 1", old_password="guess")
        users.set_password(store, op, "operator1", "new password 1", old_password=PASSWORD)
        with pytest.raises(PermissionDenied, match="operator1 \\(operator\\) may not change the password of qa1"):
            users.set_password(store, op, "qa1", "new password 2", old_password=PASSWORD)
        users.set_password(store, people[Role.ADMIN], "qa1", "new password 3")  # an admin needs no old password
        with pytest.raises(AuthError, match="too short"):
            users.set_password(store, people[Role.ADMIN], "qa1", "1234567")
        assert users.authenticate(store, "operator1", "new password 1").name == "operator1"
        assert users.authenticate(store, "qa1", "new password 3").name == "qa1"
        with pytest.raises(AuthError):
            users.authenticate(store, "operator1", PASSWORD)
        changes = [(e.who, e.target) for e in audit.entries(store, 100) if e.action == "password_changed"]
        assert audit.verify(store).ok
    assert sorted(changes) == [("admin", "qa1"), ("operator1", "operator1")]
    con = sqlite3.connect(db)
    details = " ".join(d for (d,) in con.execute("select detail_json from audit_log"))
    hashes = [h for (h,) in con.execute("select password_hash from users")]
    con.close()
    for secret in (PASSWORD, "new password 1", "new password 3", "scrypt$", *hashes):
        assert secret not in details
