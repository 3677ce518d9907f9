"""`kill -9` of `lepton-inspect run` at random moments (issue 7's crash safety).

The run plays the bundled images through Basler's emulator into the demo model, with `--events`
(one JSON line per published verdict, flushed at once), and is killed a random 0.2-3 s after its
first verdict. Then: SQLite's integrity check is ok, every verdict published more than one commit
interval before the kill has its row, and after the next start (`open_record`) the run ended
"crashed" and its images are reconciled: no row names a file that is not there unless it says
`missing`, no image file lacks a row, no half-written file is left.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import resources
from inspection.record.images import PARTIAL
from inspection.record.opening import open_record
from inspection.settings.config import load_config

REPO = Path(__file__).resolve().parents[2]


def published(path: Path) -> list[dict]:
    """The events file's objects; a last line cut off by the kill is left out."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def kill_and_check(seed: int, work: Path) -> dict:
    """One kill at a moment drawn from `seed`; what the record kept, before and after the next start."""
    rng = random.Random(seed)
    db, events = work / f"kill-{seed}.db", work / f"kill-{seed}.jsonl"
    env = {**os.environ, "LEPTON_DATA_DIR": str(work / "data"), "PYLON_CAMEMU": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "run",
            "--camera",
            f"emu:{resources.DEMO_SAMPLES}",
            "--db",
            str(db),
            "--events",
            str(events),
            "--device",
            "cpu",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180
        while not (events.is_file() and events.stat().st_size > 0):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"seed {seed}: the run ended or published nothing: {proc.stderr.read().decode()[-2000:]}"
                )
            time.sleep(0.02)
        time.sleep(rng.uniform(0.2, 3.0))
        killed_at = time.time()
        proc.kill()
    finally:
        proc.wait(30)
        proc.stderr.close()
    con = sqlite3.connect(db)
    try:
        integrity = con.execute("pragma integrity_check").fetchone()[0]
        rows = {p for (p,) in con.execute("select part_id from inspections")}
    finally:
        con.close()
    out = published(events)
    interval = load_config().commit_interval_s
    missing = [e for e in out if e["part_id"] not in rows]
    open_record(db).close()  # the next start: the run is ended and its images reconciled
    con = sqlite3.connect(db)
    try:
        run_end = con.execute("select end_state from runs order by id desc limit 1").fetchone()[0]
        named = con.execute("select part_id, image_path, mask_path, image_status from inspections").fetchall()
    finally:
        con.close()
    base = db.parent
    dangling = [
        p
        for p, image, mask, status in named
        if status is None
        and image is not None
        and not ((base / image).is_file() and (mask is None or (base / mask).is_file()))
    ]
    images_dir = base / f"{db.stem}-images"
    files = (
        [f for f in images_dir.rglob("*") if f.is_file() and f.parent.name != "relabels"] if images_dir.is_dir() else []
    )
    orphans = [f for f in files if f.name.endswith(PARTIAL) or f.stem.removesuffix("_mask") not in rows]
    return {
        "seed": seed,
        "published": len(out),
        "rows": len(rows),
        "integrity": integrity,
        "no_row": len(missing),
        "no_row_published_over_interval_before": len([e for e in missing if e["time"] < killed_at - interval]),
        "longest_lag_s": round(max((killed_at - e["time"] for e in missing), default=0.0), 3),
        "run_end": run_end,
        "rows_naming_absent_files": len(dangling),
        "files_without_rows": len(orphans),
        "marked_missing": sum(1 for *_, status in named if status == "missing"),
        "image_files": len(files),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kill_9_at_a_random_moment_loses_no_published_verdict_and_corrupts_nothing(seed, tmp_path):
    r = kill_and_check(seed, tmp_path)
    assert r["integrity"] == "ok", r
    assert r["published"] > 0 and r["rows"] > 0, r
    assert r["no_row_published_over_interval_before"] == 0, r
    assert r["run_end"] == "crashed", r
    assert r["rows_naming_absent_files"] == 0 and r["files_without_rows"] == 0, r
    assert r["image_files"] > 0, r  # the run kept images (rejects), so reconciliation had something to check
