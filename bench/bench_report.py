"""Shift report time against shift size: a real run (Basler's emulator, the demo model) grown to
1k, 10k and 100k parts (bench/synthetic.py), then the report's figures (SQL), the PDF, and the
CSV timed in one run.

    .venv/bin/python bench/bench_report.py [--sizes 1000 10000 100000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PYLON_CAMEMU", "1")

from bench.synthetic import add_parts, real_record  # noqa: E402
from inspection.record.opening import open_record
from inspection.reports.figures import gather, shift_window, write_csv
from inspection.reports.pdf import write_pdf
from inspection.settings.config import load_config


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lepton-bench-report-"))
    os.environ["LEPTON_DATA_DIR"] = str(work)
    base = real_record(work / "real.db")
    tz = load_config().shifts.tz
    print(f"{'parts':>8} {'figures (SQL)':>14} {'PDF':>8} {'CSV':>8} {'pages':>6}")
    for n in a.sizes:
        db = work / f"shift-{n}.db"
        shutil.copy(base, db)
        shift_id = add_parts(db, n)
        store = open_record(db)
        try:
            t0 = time.perf_counter()
            data = gather(store, shift_window(store, shift_id), tz)
            t1 = time.perf_counter()
            pages = write_pdf(data, work / f"r{n}.pdf")
            t2 = time.perf_counter()
            rows = write_csv(store, data, work / f"r{n}.csv")
            t3 = time.perf_counter()
        finally:
            store.close()
        assert data.inspected == rows == n, (data.inspected, rows, n)
        print(f"{n:>8} {t1 - t0:>12.2f} s {t2 - t1:>6.2f} s {t3 - t2:>6.2f} s {pages:>6}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
