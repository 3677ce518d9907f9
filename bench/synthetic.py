"""A record grown to a given size for load tests: copies of a real run's inspection rows (their
image files included) spread evenly over a shift, with random verdicts in known proportions."""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
import uuid
from pathlib import Path


def real_record(db: Path, parts: int = 40) -> Path:
    """A real run's record at `db`: Basler's emulator playing the bundled images into the demo model."""
    import resources
    from inspection.line import open_line

    line = open_line(camera_spec=f"emu:{resources.DEMO_SAMPLES}", db=db, device="cpu")
    try:
        line.start(max_parts=parts).wait(120)
        line.stop()
    finally:
        line.close()
    return db


def add_parts(db: Path, total: int, seed: int = 0, shares: tuple[float, float, float] = (0.9, 0.07, 0.03)) -> int:
    """Add rows to the first shift of `db` until it holds `total` inspections; returns the shift id."""
    con = sqlite3.connect(db)
    try:
        cols = [c[1] for c in con.execute("pragma table_info(inspections)") if c[1] != "id"]
        template = con.execute(f"select {', '.join(cols)} from inspections limit 1").fetchone()
        shift_id, start, end = con.execute("select id, start_at, end_at from shifts order by id limit 1").fetchone()
        have = con.execute("select count(*) from inspections where shift_id = ?", (shift_id,)).fetchone()[0]
        t0, t1 = dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end)
        step = (t1 - t0) / max(1, total - have)
        rng = random.Random(seed)
        rows = []
        for k in range(total - have):
            r = dict(zip(cols, template, strict=True))
            verdict = rng.choices(["OK", "NG", "REVIEW"], shares)[0]
            r.update(
                part_id=uuid.uuid4().hex,
                seq=k + 1,
                ts=(t0 + step * k).isoformat(sep=" ", timespec="microseconds"),
                verdict=verdict,
                part_verdict=verdict,
                score=rng.uniform(30, 60),
                classes_json='["anomaly"]' if verdict == "NG" else "[]",
            )
            rows.append(tuple(r[c] for c in cols))
        con.executemany(f"insert into inspections ({', '.join(cols)}) values ({', '.join('?' * len(cols))})", rows)
        con.commit()
        return shift_id
    finally:
        con.close()
