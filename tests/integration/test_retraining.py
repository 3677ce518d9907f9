"""The engineers' loop without the window, on a record filled by Basler's emulator playing the bundled
real images into the demo model: review queries, relabels, a candidate trained from the record,
compared on held-back labelled parts, promoted, the next run judged by it, and rolled back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inspection.access import audit, users
from inspection.engineering import model_registry, review
from inspection.engineering.relabel import relabel
from inspection.engineering.review import ReviewFilter
from inspection.errors import ConfigError
from inspection.record.opening import open_record
from inspection.settings.recipe import load_recipe
from tests.integration.test_cli import assert_one_sentence_error, cli
from tests.integration.test_report import run_line, sql

ENG_PASSWORD = "eng-password"


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, samples):
    """A record of 48 parts (each bundled image six times), every kept image relabelled by engineer
    eng (password ENG_PASSWORD): NG parts under 50 as false rejects, the others confirmed NG with a
    drawn mask, kept OK parts confirmed."""
    db = tmp_path_factory.mktemp("loop") / "line.db"
    run_line(db, samples, 48)
    store = open_record(db)
    try:
        admin = users.create_first_admin(store, "admin", "admin-password")
        eng = users.create_user(store, admin, "eng", users.Role.ENGINEER, ENG_PASSWORD)
        for part_id, verdict, score in sql(
            db, "select part_id, verdict, score from inspections where image_path is not null order by id"
        ):
            if verdict == "NG" and score < 50:
                relabel(store, part_id, "OK", user=eng, comment="lubricant")
            elif verdict == "NG":
                mask = np.zeros((460, 1130), bool)
                mask[200:230, 500:540] = True
                relabel(store, part_id, "NG", user=eng, classes=("pitting",), mask=mask)
            else:
                relabel(store, part_id, "OK", user=eng)
    finally:
        store.close()
    return db


def test_review_queries_filter_sort_and_page(labelled):
    store = open_record(labelled)
    try:
        everything = ReviewFilter(verdicts=(), sort="oldest")
        total = review.count_parts(store, everything)
        assert total == 48
        pages = [r.part_id for k in range(0, total, 7) for r in review.page(store, everything, k, 7)]
        assert pages == [
            p for (p,) in sql(labelled, "select part_id from inspections order by id")
        ]  # pages tile the record
        ng = review.page(store, ReviewFilter(verdicts=("NG",)), 0, 100)
        assert [r.score for r in ng] == sorted(
            (s for (s,) in sql(labelled, "select score from inspections where verdict = 'NG'")), reverse=True
        )
        lo, hi = ng[-1].score, ng[0].score
        assert (
            review.count_parts(store, ReviewFilter(verdicts=(), score_min=lo, score_max=hi))
            == sql(labelled, "select count(*) from inspections where score between ? and ?", lo, hi)[0][0]
        )
        corrected = review.page(store, ReviewFilter(verdicts=(), label_state="corrected"), 0, 100)
        expected = sql(
            labelled,
            "select count(*) from inspections i join relabels r on r.inspection_id = i.id where r.verdict != i.verdict",
        )[0][0]
        assert len(corrected) == expected > 0 and all(r.label == "OK" and r.verdict == "NG" for r in corrected)
        confirmed = review.count_parts(store, ReviewFilter(verdicts=(), label_state="confirmed"))
        unreviewed = review.count_parts(store, ReviewFilter(verdicts=(), label_state="unreviewed"))
        assert confirmed + len(corrected) + unreviewed == total
        assert unreviewed == sql(labelled, "select count(*) from inspections where image_path is null")[0][0]
        assert (
            review.count_parts(store, ReviewFilter(verdicts=(), defect_class="anomaly"))
            == sql(labelled, "select count(*) from inspections where classes_json like '%anomaly%'")[0][0]
        )
        row = next(r for r in review.page(store, ReviewFilter(verdicts=("NG",), label_state="confirmed"), 0, 1))
        images = review.load_part_images(row)
        assert images.image.shape == (460, 1130, 3) and images.label_mask.sum() == 30 * 40 and images.model_mask.any()
        assert [h.verdict for h in review.history(store, row.part_id)] == ["NG"]
        assert review.thumbnail(row, 64).shape[0] == 64
        with pytest.raises(ConfigError, match="lowest score"):
            ReviewFilter(score_min=2, score_max=1)
    finally:
        store.close()


def test_candidate_compared_promoted_judges_the_next_run_and_rolls_back(labelled, tmp_path, samples, monkeypatch):
    monkeypatch.setenv("LEPTON_PASSWORD", ENG_PASSWORD)  # (the CLI's password for --user eng)
    db = tmp_path / "line.db"
    db.write_bytes(labelled.read_bytes())
    import shutil

    shutil.copytree(labelled.parent / "line-images", tmp_path / "line-images")
    data = tmp_path / "data"
    proc = cli("train", "--from-db", str(db), "--device", "cpu", "--beside-line", data_dir=data)
    assert proc.returncode == 0, proc.stderr
    (candidate,) = (data / "models" / "candidates").glob("*.lpkg")
    comparison = json.loads(candidate.with_suffix(".compare.json").read_text())
    current, cand = comparison["models"]["current"], comparison["models"]["candidate"]
    assert comparison["parts"] == comparison["held_back"] >= 1 and comparison["trained_on_labels"] >= 1
    assert comparison["parts"] + comparison["trained_on_labels"] == comparison["labelled_parts"]
    assert (current["model"], cand["model"]) == ("demo-ballscrew v1", "demo-ballscrew v2")
    assert {"escapes", "false_rejects", "latency_ms_p50", "per_class"} <= set(cand)
    assert "held back" in proc.stdout and "candidate" in proc.stdout
    from models.package import read_package

    meta, state, _ = read_package(candidate)
    parent, _, _ = read_package(load_recipe().model)
    assert meta["parent"]["version"] == "1" and state["memory_bank"].shape[0] > 2048  # the bank grew by the OK labels
    held = set(meta["training"]["held_back_parts"])
    assert held and not held & set(meta["training"]["labels"]["groups"])  # never trained on what it is compared on
    assert len(held) == comparison["parts"] and meta["training"]["labels"]["parts"] == comparison["trained_on_labels"]

    proc = cli(
        "models",
        "promote",
        "--db",
        str(db),
        "--candidate",
        str(candidate),
        "--user",
        "eng",
        "--comment",
        "fewer false rejects",
        data_dir=data,
    )
    assert proc.returncode == 0, proc.stderr
    proc = cli("run", "--camera", f"emu:{samples}", "--parts", "8", "--db", str(db), "--json", data_dir=data)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["model"] == "demo-ballscrew v2"
    last_run = sql(db, "select max(run_id) from inspections")[0][0]
    assert sql(
        db,
        "select distinct m.version from inspections i join model_versions m on m.id = i.model_version_id "
        "where i.run_id = ?",
        last_run,
    ) == [("2",)]
    assert sql(
        db,
        "select distinct m.version from inspections i join model_versions m on m.id = i.model_version_id "
        "where i.run_id = 1",
    ) == [("1",)]
    row = sql(db, "select who, action, comment, evaluation_json from model_promotions")[0]
    assert (
        row[:3] == ("eng", "promote", "fewer false rejects")
        and json.loads(row[3])["models"]["candidate"]["model"] == "demo-ballscrew v2"
    )

    proc = cli("models", "rollback", "--db", str(db), "--user", "eng", data_dir=data)
    assert proc.returncode == 0, proc.stderr
    proc = cli("run", "--camera", f"emu:{samples}", "--parts", "4", "--db", str(db), "--json", data_dir=data)
    assert json.loads(proc.stdout)["model"] == "demo-ballscrew v1"
    assert [a for (a,) in sql(db, "select action from model_promotions order by id")] == ["promote", "rollback"]
    listing = cli("models", "list", "--db", str(db), data_dir=data)
    assert "rollback" in listing.stdout and "promote" in listing.stdout and str(candidate) in listing.stdout
    assert_one_sentence_error(
        cli(
            "models",
            "promote",
            "--db",
            str(db),
            "--candidate",
            str(tmp_path / "nope.lpkg"),
            "--user",
            "eng",
            data_dir=data,
        ),
        "does not exist",
    )


def test_promotions_push_rollbacks_pop_and_a_missing_model_is_one_sentence(labelled, tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path / "data"))
    db = tmp_path / "line.db"
    db.write_bytes(labelled.read_bytes())
    recipe = load_recipe()
    from models.package import read_package, save_package

    meta, state, _ = read_package(recipe.model)
    v2, v3 = tmp_path / "v2.lpkg", tmp_path / "v3.lpkg"
    save_package(v2, {**meta, "version": "2"}, state)
    save_package(v3, {**meta, "version": "3"}, state)
    store = open_record(db)
    try:
        eng = users.authenticate(store, "eng", ENG_PASSWORD)
        with pytest.raises(ConfigError, match="nothing to roll back"):
            model_registry.rollback(store, recipe, user=eng)
        with pytest.raises(ConfigError, match="already runs"):
            model_registry.promote(store, recipe, recipe.model, user=eng)
        model_registry.promote(store, recipe, v2, user=eng)
        with pytest.raises(ConfigError, match="already runs"):  # a double click promotes once
            model_registry.promote(store, recipe, v2, user=eng)
        model_registry.promote(store, recipe, v3, user=eng)
        versions = []
        for _ in range(2):
            model_registry.rollback(store, recipe, user=eng)
            versions.append(read_package(model_registry.model_for(recipe, db))[0]["version"])
        assert versions == ["2", "1"]  # back through the history, to the recipe's own model
        assert model_registry.model_for(recipe, db) == recipe.model and not model_registry.can_roll_back(
            store, recipe.name
        )
        with pytest.raises(ConfigError, match="nothing to roll back"):
            model_registry.rollback(store, recipe, user=eng)
        p = model_registry.promote(store, recipe, v3, user=eng)
        trail = [
            (e.who, e.action, json.loads(e.detail_json))
            for e in reversed(audit.entries(store, 100))
            if e.action in ("promote", "rollback")
        ]
        assert [a for _, a, _ in trail] == ["promote", "promote", "rollback", "rollback", "promote"] and audit.verify(
            store
        ).ok
        assert trail[-1] == (
            "eng",
            "promote",
            {
                "package": p.package,
                "sha256": read_package(v3)[2],
                "previous_package": model_registry.RECIPE_OWN,
                "comment": "",
            },
        )
        assert sql(db, "select package_path from model_promotions order by id desc limit 1") == [(p.package,)]
        assert "/" not in p.package  # a name in the data folder's models/: the folder may move
    finally:
        store.close()
    assert model_registry.model_for(recipe, db) == p.path(recipe)
    p.path(recipe).unlink()
    with pytest.raises(ConfigError, match="missing"):
        model_registry.model_for(recipe, db)


def test_a_cancelled_training_leaves_nothing_behind(labelled, tmp_path):
    """SIGTERM (the window's Cancel) at the first reported step: exit 130, one sentence, no
    candidate or partial file, and the exported labels' temporary folder removed."""
    import glob
    import os
    import signal
    import subprocess
    import sys
    import tempfile

    from tests.integration.test_cli import REPO

    data = tmp_path / "data"
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "lepton-labels-*")))
    env = {**os.environ, "LEPTON_DATA_DIR": str(data), "PYLON_CAMEMU": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "train", "--from-db", str(labelled), "--device", "cpu", "--progress-json"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = json.loads(proc.stdout.readline())
    assert first["stage"] == "features" and first["i"] == 1
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err
    assert [x for x in err.splitlines() if x.startswith("error: ")] == [
        "error: training cancelled; no candidate was written."
    ]
    assert not list((data / "models" / "candidates").glob("*")) if (data / "models" / "candidates").exists() else True
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "lepton-labels-*"))) == before
