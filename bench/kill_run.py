"""`kill -9` of `lepton-inspect run` at random moments, over more seeds than the test runs: for each,
what the record kept (tests/integration/test_crash.py holds the harness and asserts it for three
seeds). Printed: verdicts published, rows, SQLite's integrity check, verdicts without a row (and of
them, those published more than one commit interval before the kill), the longest lag of a verdict
without a row, and after the next start the run's end, images marked missing, rows naming absent
files and image files without rows.

    .venv/bin/python bench/kill_run.py [--seeds 0 1 2 3 4 5 6 7 8 9]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.test_crash import kill_and_check  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lepton-kill-"))
    cols = (
        "seed",
        "published",
        "rows",
        "integrity",
        "no_row",
        "no_row_published_over_interval_before",
        "longest_lag_s",
        "run_end",
        "marked_missing",
        "rows_naming_absent_files",
        "files_without_rows",
    )
    print(" ".join(cols))
    try:
        for seed in a.seeds:
            r = kill_and_check(seed, work)
            print(" ".join(str(r[c]) for c in cols), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
