"""`kill -9` of `lepton-inspect run` at random moments: does the record keep every verdict that was
published? For each seed: a run on the simulated camera playing the bundled images into the demo
model, with `--events` (one JSON line per published verdict, flushed at once), killed after a random
0.1-3 s; then SQLite's integrity check, and the verdicts published more than one commit interval
before the kill that have no row, with the longest such lag. A measurement (issue 7 makes it a
test once the writer meets it), printed, never asserted.

    .venv/bin/python bench/kill_run.py [--seeds 0 1 2 3 4]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import resources  # noqa: E402
from inspection.config import load_config  # noqa: E402


def published(path: Path) -> list[dict]:
    """The events file's objects; a last line cut off by the kill is left out."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def one(seed: int, work: Path) -> dict:
    rng = random.Random(seed)
    db, events = work / f"kill-{seed}.db", work / f"kill-{seed}.jsonl"
    env = {**os.environ, "LEPTON_DATA_DIR": str(work / "data"), "PYLON_CAMEMU": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "app", "run", "--camera", f"sim:{resources.DEMO_SAMPLES}", "--db", str(db),
                             "--events", str(events), "--device", "cpu"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (events.is_file() and events.stat().st_size > 0):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"seed {seed}: the run ended or published nothing")
            time.sleep(0.02)
        time.sleep(rng.uniform(0.1, 3.0))
        killed_at = time.time()
        proc.kill()
    finally:
        proc.wait(30)
    con = sqlite3.connect(db)
    try:
        integrity = con.execute("pragma integrity_check").fetchone()[0]
        rows = {p for (p,) in con.execute("select part_id from inspections")}
    finally:
        con.close()
    out = published(events)
    interval = load_config().commit_interval_s
    missing = [e for e in out if e["part_id"] not in rows]
    early = [e for e in missing if e["time"] < killed_at - interval]
    return {"seed": seed, "published": len(out), "rows": len(rows), "integrity": integrity, "missing": len(missing),
            "missing_published_over_interval_before": len(early),
            "longest_lag_s": round(max((killed_at - e["time"] for e in missing), default=0.0), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lepton-kill-"))
    print(f"{'seed':>4} {'published':>9} {'rows':>5} {'integrity':>9} {'no row':>6} {'of them > interval':>18} {'longest lag':>11}")
    for seed in a.seeds:
        r = one(seed, work)
        print(f"{r['seed']:>4} {r['published']:>9} {r['rows']:>5} {r['integrity']:>9} {r['missing']:>6} "
              f"{r['missing_published_over_interval_before']:>18} {r['longest_lag_s']:>9.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
