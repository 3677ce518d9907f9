"""How fast the review view pages through a large record: a real run (Basler's emulator playing the
bundled images into the demo model) grown to 10,000 and 100,000 parts, 2 % of them relabelled; for
each filter the review offers, the count and one page (48 rows) at the start, the middle and the
end, and the thumbnails of one page read cold (what the controller's cache saves on the next visit).
All of it runs on the review's worker thread in the window, never on the GUI thread.

    .venv/bin/python bench/bench_review.py [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.synthetic import add_parts, real_record  # noqa: E402
from inspection.engineering import review
from inspection.engineering.review import ReviewFilter
from inspection.record.opening import open_record

PAGE = 48


def relabel_some(db: Path, share: float, seed: int = 0) -> int:
    """Relabel a share of the parts straight in SQL (the store's relabel is one transaction each)."""
    con = sqlite3.connect(db)
    try:
        rng = random.Random(seed)
        ids = [(i, v) for i, v in con.execute("select id, verdict from inspections")]
        chosen = rng.sample(ids, int(len(ids) * share))
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
        con.executemany(
            "insert into relabels "
            "(inspection_id, at, who, previous_verdict, verdict, classes_json, mask_path, comment) "
            "values (?, ?, 'bench', ?, ?, '[]', null, '')",
            [(i, now, v, rng.choice(["OK", "NG"])) for i, v in chosen],
        )
        con.commit()
        return len(chosen)
    finally:
        con.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lepton-bench-review-"))
    os.environ["LEPTON_DATA_DIR"] = str(work)
    base = real_record(work / "real.db")
    rejects = ReviewFilter()
    filters = {
        "rejects by score": rejects,
        "all, newest": ReviewFilter(verdicts=(), sort="newest"),
        "NG, unreviewed": dataclasses.replace(rejects, verdicts=("NG",), label_state="unreviewed"),
        "all, corrected": ReviewFilter(verdicts=(), label_state="corrected"),
        "rejects, score 40-50": dataclasses.replace(rejects, score_min=40.0, score_max=50.0),
    }
    print(f"{'parts':>8} {'filter':<22} {'matches':>8} {'count':>8} {'page 1':>8} {'middle':>8} {'last':>8}")
    for n in a.sizes:
        db = work / f"review-{n}.db"
        shutil.copy(base, db)
        shutil.copytree(work / "real-images", work / f"review-{n}-images", dirs_exist_ok=True)
        add_parts(db, n)
        relabel_some(db, 0.02)
        store = open_record(db)
        try:
            for name, f in filters.items():
                t0 = time.perf_counter()
                total = review.count_parts(store, f)
                t1 = time.perf_counter()
                times = []
                for offset in (0, max(0, total // 2 - PAGE // 2), max(0, total - PAGE)):
                    t = time.perf_counter()
                    rows = review.page(store, f, offset, PAGE)
                    times.append(time.perf_counter() - t)
                    assert len(rows) == min(PAGE, total - offset)
                print(
                    f"{n:>8} {name:<22} {total:>8} {(t1 - t0) * 1000:>6.0f}ms "
                    + " ".join(f"{x * 1000:>6.0f}ms" for x in times)
                )
            rows = review.page(store, rejects, 0, PAGE)
            t = time.perf_counter()
            thumbs = [review.thumbnail(r) for r in rows]
            cold = time.perf_counter() - t
            print(
                f"{n:>8} thumbnails of one page, cold: {cold * 1000:.0f} ms "
                f"({sum(x is not None for x in thumbs)} images); "
                "the window's cache (2,000 thumbnails) serves the next visit"
            )
        finally:
            store.close()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
