"""Bad input at the command line (issue 7): the real `lepton-inspect` commands, each bad input one
line on stderr (`error: ...`), a non-zero exit, no traceback, and nothing lost or changed."""

from __future__ import annotations

import csv
import io
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import resources
from app.cli import main
from inspection.record.opening import open_record
from tests.unit.test_bad_input import newer_schema_db, sha

REPO = Path(__file__).resolve().parents[2]
SAMPLES = resources.DEMO_SAMPLES


@pytest.fixture(autouse=True)
def _restore_logging():
    """main() sets up logging as the entry point does; each call here gets its handlers back off."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in root.handlers[:]:
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line(code: int, err: str, *words: str, exit_code: int = 2) -> str:
    assert code == exit_code, err
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


# -- config, recipe, model: refused before the database is touched -----------------------------------


def test_a_config_with_an_unknown_key(capsys, tmp_path):
    config = tmp_path / "station.toml"
    config.write_text("[runner]\nqueue_size = 8\n[runner.tuning]\nturbo = true\n")
    db = tmp_path / "db" / "lepton.db"
    code, _, err = run_cli(
        capsys, "run", "--camera", f"sim:{SAMPLES}", "--config", str(config), "--db", str(db), "--parts", "2"
    )
    assert_one_line(code, err, "'runner.tuning'", str(config))
    assert not db.parent.exists()


@pytest.mark.parametrize(
    "text, key",
    [
        ("[verdict]\nmin_defect_area_px = -5\n", "verdict.min_defect_area_px"),
        ("[camera]\ngain_db = nan\n", "camera.gain_db"),
        (
            "[runner]\ncommit_interval_s = 86400\n",
            "runner.commit_interval_s",
        ),  # a config key in a recipe: unknown there
    ],
)
def test_a_recipe_with_an_out_of_range_value(capsys, tmp_path, text, key):
    recipe = tmp_path / "product.toml"
    recipe.write_text(text)
    db = tmp_path / "db" / "lepton.db"
    code, _, err = run_cli(
        capsys, "run", "--camera", f"sim:{SAMPLES}", "--recipe", str(recipe), "--db", str(db), "--parts", "2"
    )
    assert_one_line(code, err, key.split(".")[0], str(recipe))
    assert not db.parent.exists()


def test_a_config_out_of_range_for_a_report(capsys, tmp_path):
    config = tmp_path / "station.toml"
    config.write_text("[alarms]\nng_rate_limit = inf\n")
    db = tmp_path / "lepton.db"
    open_record(db).close()
    code, _, err = run_cli(
        capsys,
        "report",
        "--db",
        str(db),
        "--from",
        "2026-01-01T00:00",
        "--to",
        "2026-01-02T00:00",
        "--json",
        str(tmp_path / "r.json"),
        "--config",
        str(config),
    )
    assert_one_line(code, err, "alarms.ng_rate_limit", str(config))
    assert not (tmp_path / "r.json").exists()


def corrupt_packages(tmp_path: Path) -> dict[str, Path]:
    data = resources.DEMO_MODEL.read_bytes()
    out = {"random": os.urandom(4096), "empty": b"", "truncated": data[: len(data) // 2]}
    buf = io.BytesIO()
    torch.save({"epoch": 1, "weights": torch.zeros(3)}, buf)
    out["checkpoint"] = buf.getvalue()
    paths = {}
    for name, content in out.items():
        paths[name] = tmp_path / f"{name}.lpkg"
        paths[name].write_bytes(content)
    return paths


def test_a_corrupt_or_foreign_model_package(capsys, tmp_path):
    db = tmp_path / "db" / "lepton.db"
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.jpg").write_bytes(sorted(SAMPLES.glob("*.jpg"))[0].read_bytes())
    for package in corrupt_packages(tmp_path).values():
        code, _, err = run_cli(
            capsys, "run", "--camera", f"sim:{SAMPLES}", "--model", str(package), "--db", str(db), "--parts", "2"
        )
        assert_one_line(code, err, str(package))
        code, _, err = run_cli(
            capsys, "predict", "--model", str(package), "--input", str(images), "--out", str(tmp_path / "out")
        )
        assert_one_line(code, err, str(package))
    assert not db.parent.exists() and not (tmp_path / "out").exists()


# -- databases: refused, and left byte for byte as they were -------------------------------------------


def bad_databases(tmp_path: Path) -> dict[str, Path]:
    dbs = {"newer": newer_schema_db(tmp_path / "newer.db")}
    dbs["random"] = tmp_path / "random.db"
    dbs["random"].write_bytes(os.urandom(8192))
    dbs["empty"] = tmp_path / "empty.db"
    dbs["empty"].write_bytes(b"")
    dbs["foreign"] = tmp_path / "foreign.db"
    con = sqlite3.connect(dbs["foreign"])
    con.execute("CREATE TABLE invoices (n INTEGER)")
    con.commit()
    con.close()
    return dbs


WORDS = {
    "newer": "newer Lepton Inspect",
    "random": "cannot be opened",
    "empty": "empty file",
    "foreign": "another program",
}


def test_bad_databases_for_run_shifts_and_report(capsys, tmp_path):
    for kind, db in bad_databases(tmp_path).items():
        before = sha(db)
        for args in (
            ("run", "--camera", f"sim:{SAMPLES}", "--parts", "2", "--db", str(db)),
            ("shifts", "--db", str(db)),
            (
                "report",
                "--db",
                str(db),
                "--from",
                "2026-01-01T00:00",
                "--to",
                "2026-01-02T00:00",
                "--json",
                str(tmp_path / "r.json"),
            ),
        ):
            code, out, err = run_cli(capsys, *args)
            assert_one_line(code, err, WORDS[kind], str(db))
            assert out == "" and sha(db) == before, (kind, args)
        assert not (tmp_path / "r.json").exists()


def test_a_database_locked_by_a_running_instance(capsys, tmp_path):
    db = tmp_path / "lepton.db"
    with open_record(db):  # the station, in this process
        before = sha(db)
        code, _, err = run_cli(capsys, "run", "--camera", f"sim:{SAMPLES}", "--parts", "2", "--db", str(db))
        assert_one_line(code, err, "in use by another Lepton Inspect instance")
        # ... and another process: a second `lepton-inspect run`.
        env = {**os.environ, "LEPTON_DATA_DIR": str(tmp_path)}
        proc = subprocess.run(
            [sys.executable, "-m", "app", "run", "--camera", f"sim:{SAMPLES}", "--parts", "2", "--db", str(db)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert_one_line(proc.returncode, proc.stderr, "in use by another Lepton Inspect instance")
        assert sha(db) == before
        code, out, err = run_cli(capsys, "shifts", "--db", str(db))  # reading beside the station is allowed
        assert code == 0 and err == "", err


def test_a_read_only_database(capsys, tmp_path):
    db = tmp_path / "archive.db"
    open_record(db).close()
    db.chmod(0o444)
    try:
        before = sha(db)
        code, _, err = run_cli(capsys, "run", "--camera", f"sim:{SAMPLES}", "--parts", "2", "--db", str(db))
        assert_one_line(code, err, str(db))
        assert sha(db) == before
        code, _, err = run_cli(capsys, "shifts", "--db", str(db))
        assert code == 0 and err == "", err
    finally:
        db.chmod(0o644)


# -- predict: bad files reported, good files inspected ---------------------------------------------------


def test_predict_on_a_folder_mixing_good_and_corrupt_images(capsys, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    good = sorted(SAMPLES.glob("*.jpg"))[:2]
    for p in good:
        (folder / p.name).write_bytes(p.read_bytes())
    data = good[0].read_bytes()
    (folder / "x_truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "x_empty.png").write_bytes(b"")
    (folder / "x_text.png").write_text("this is no image")
    cv2.imwrite(str(folder / "y_16bit.png"), cv2.imread(str(good[0])).astype(np.uint16) * 257)  # 16 bits a channel
    out = tmp_path / "out"
    code, stdout, err = run_cli(
        capsys,
        "predict",
        "--model",
        str(resources.DEMO_MODEL),
        "--input",
        str(folder),
        "--out",
        str(out),
        "--device",
        "cpu",
    )
    assert code == 1, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "3 of 6 images could not be inspected" in errors[0], err
    assert "3 of 6 images inspected" in stdout
    rows = {Path(r["image"]).name: r for r in csv.DictReader((out / "predictions.csv").open(encoding="utf-8"))}
    assert len(rows) == 6
    for name in ("x_truncated.jpg", "x_empty.png", "x_text.png"):
        assert str(folder / name) in rows[name]["error"] and rows[name]["verdict"] == ""
    for name in (*(p.name for p in good), "y_16bit.png"):
        r = rows[name]
        assert r["error"] == "" and r["verdict"] in ("OK", "NG", "REVIEW")
        assert (
            cv2.imread(str(out / r["map"]), cv2.IMREAD_GRAYSCALE).shape
            == cv2.imread(str(folder / name), cv2.IMREAD_GRAYSCALE).shape
        )
    # The 16-bit copy of a sample is the same part, scaled down to the same 8-bit pixels: the same score.
    assert (rows["y_16bit.png"]["score"], rows["y_16bit.png"]["verdict"]) == (
        rows[good[0].name]["score"],
        rows[good[0].name]["verdict"],
    )
