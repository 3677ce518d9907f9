"""`lepton-inspect users`, `audit`, `recipe thresholds` and `models promote --user` as a user runs
them: passwords from the environment, refusals in one sentence, a tampered audit trail found."""

from __future__ import annotations

import shutil
import sqlite3

import resources
from tests.integration.test_cli import assert_one_sentence_error, cli


def as_(monkeypatch, password: str | None = None, new_password: str | None = None) -> None:
    for name, value in (("LEPTON_PASSWORD", password), ("LEPTON_NEW_PASSWORD", new_password)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def test_users_audit_and_refusals_from_the_command_line(tmp_path, monkeypatch):
    db, data = tmp_path / "line.db", tmp_path / "data"
    as_(monkeypatch, new_password="admin-password")
    proc = cli("users", "init", "--db", str(db), "--name", "boss", data_dir=data)
    assert proc.returncode == 0, proc.stderr
    assert_one_sentence_error(
        cli("users", "init", "--db", str(db), "--name", "eve", data_dir=data), "first admin exists already"
    )

    as_(monkeypatch, password="admin-password", new_password="engineer-password")
    assert (
        cli(
            "users", "add", "--db", str(db), "--user", "boss", "--name", "eng", "--role", "engineer", data_dir=data
        ).returncode
        == 0
    )
    as_(monkeypatch, password="admin-password", new_password="operator-password")
    assert (
        cli(
            "users", "add", "--db", str(db), "--user", "boss", "--name", "op", "--role", "operator", data_dir=data
        ).returncode
        == 0
    )
    listing = cli("users", "list", "--db", str(db), data_dir=data)
    assert listing.returncode == 0, listing.stderr
    assert [line.split()[:3] for line in listing.stdout.splitlines()] == [
        ["boss", "admin", "active"],
        ["eng", "engineer", "active"],
        ["op", "operator", "active"],
    ]

    as_(monkeypatch, password="not-the-password", new_password="whatever-password")
    wrong = cli("users", "add", "--db", str(db), "--user", "boss", "--name", "x", "--role", "qa", data_dir=data)
    assert_one_sentence_error(wrong, "Login as boss refused", "user name or password is wrong")
    assert wrong.returncode == 2 and "not-the-password" not in wrong.stderr

    # An operator may neither promote nor change thresholds: refused in the core, one sentence each.
    as_(monkeypatch, password="operator-password")
    refused = cli(
        "models", "promote", "--db", str(db), "--candidate", str(resources.DEMO_MODEL), "--user", "op", data_dir=data
    )
    assert_one_sentence_error(refused, "User op (operator) may not promote or roll back models")
    recipe = tmp_path / "line.toml"
    shutil.copyfile(resources.DEFAULT_RECIPE, recipe)
    assert_one_sentence_error(
        cli(
            "recipe",
            "thresholds",
            "--db",
            str(db),
            "--recipe",
            str(recipe),
            "--user",
            "op",
            "--ng-at",
            "0.5",
            data_dir=data,
        ),
        "may not change thresholds",
    )
    as_(monkeypatch, password="engineer-password")
    proc = cli(
        "recipe",
        "thresholds",
        "--db",
        str(db),
        "--recipe",
        str(recipe),
        "--user",
        "eng",
        "--ok-below",
        "0.25",
        "--ng-at",
        "0.5",
        data_dir=data,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ok_below = 0.25" in recipe.read_text() and "NG at model -> 0.5" in proc.stdout

    verify = cli("audit", "verify", "--db", str(db), data_dir=data)
    assert verify.returncode == 0, verify.stderr
    trail = cli("audit", "list", "--db", str(db), "--limit", "100", data_dir=data)
    actions = [line.split()[5] for line in trail.stdout.splitlines()]
    assert (
        actions.count("login_failed") == 1
        and actions.count("thresholds_changed") == 1
        and actions[-2:] == ["thresholds_changed", "logout"]
    )
    assert (
        f"The audit trail is intact: {len(actions)} entries checked, the last {len(actions)} with hash "
        in verify.stdout
    )

    con = sqlite3.connect(db)
    con.execute("drop trigger audit_log_no_update")
    con.execute(
        "update audit_log set detail_json = '{\"role\":\"admin\"}' where action = 'user_created' and target = 'op'"
    )
    bad = con.execute("select id from audit_log where action = 'user_created' and target = 'op'").fetchone()[0]
    con.commit()
    con.close()
    tampered = cli("audit", "verify", "--db", str(db), data_dir=data)
    assert tampered.returncode == 1
    assert_one_sentence_error(tampered, f"Audit entry {bad} (user_created by boss) does not match its hash")
