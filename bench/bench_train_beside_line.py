"""The line's latency while a model trains beside it. The headless line (Basler's emulator playing
the bundled samples into the demo model) runs alone, then beside `lepton-inspect train` as is (all
cores, normal priority) and with `--beside-line` (one thread, lowest priority); p50/p99 latency and
parts/s of each, with the ratios to running alone, measured in one run.

    .venv/bin/python bench/bench_train_beside_line.py [--seconds 20] [--dataset ../shared/datasets/bsdata_ballscrew]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("PYLON_CAMEMU", "1")

import resources  # noqa: E402
from inspection.line import open_line  # noqa: E402


def measure(seconds: float, db: Path) -> tuple[float, float, float]:
    line = open_line(camera_spec=f"emu:{resources.DEMO_SAMPLES}", db=db, device="cpu")
    try:
        line.start()
        time.sleep(seconds)
        s = line.stop()
    finally:
        line.close()
    return s.latency_ms_p50, s.latency_ms_p99, s.parts_per_s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--dataset", type=Path, default=REPO.parent / "shared" / "datasets" / "bsdata_ballscrew")
    a = ap.parse_args()
    if not (a.dataset / "manifest.csv").is_file():
        print(f"no dataset at {a.dataset} (it lives in ../shared/datasets); nothing measured")
        return 1
    work = Path(tempfile.mkdtemp(prefix="lepton-bench-train-"))
    env = {**os.environ, "LEPTON_DATA_DIR": str(work)}
    train = [
        sys.executable,
        "-m",
        "app",
        "train",
        "--dataset",
        str(a.dataset),
        "--kind",
        "segmentation",
        "--size",
        "192x480",
        "--crop",
        "192x192",
        "--epochs",
        "50",
        "--out",
        str(work / "candidate.lpkg"),
    ]
    rows = [("line alone", measure(a.seconds, work / "alone.db"))]
    for name, extra in (("beside training as is", []), ("beside training --beside-line", ["--beside-line"])):
        proc = subprocess.Popen(train + extra, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(25)  # past the loading of the images, into the training steps
            if proc.poll() is not None:
                print(f"the training process ended early (exit {proc.returncode}); nothing measured beside it")
                return 1
            rows.append((name, measure(a.seconds, work / f"{len(rows)}.db")))
        finally:
            proc.kill()
            proc.wait()
    base = rows[0][1]
    print(f"{'':<32} {'p50 ms':>8} {'p99 ms':>8} {'parts/s':>8} {'p50 / alone':>12} {'parts/s / alone':>16}")
    for name, (p50, p99, pps) in rows:
        print(f"{name:<32} {p50:>8.1f} {p99:>8.1f} {pps:>8.1f} {p50 / base[0]:>12.2f} {pps / base[2]:>16.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
