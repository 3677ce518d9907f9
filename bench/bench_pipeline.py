"""Pipeline benchmark: the same parts through the simulated camera and through Basler's emulator,
in one run, on this machine. Prints throughput, latency percentiles and the per-stage split, and
the emulator/simulator ratios (the cost of the real pylon path).

    .venv/bin/python bench/bench_pipeline.py [--parts 120] [--folder DIR]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
from pathlib import Path

os.environ.setdefault("PYLON_CAMEMU", "1")

import resources  # noqa: E402
from inspection.line import open_line  # noqa: E402


def machine_is_idle() -> bool:
    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        print(f"warning: 1-minute load is {load1:.2f}; timings will be noisy (torch shares the cores)")
        return False
    return True


def run(spec: str, parts: int, db: Path) -> dict[str, float]:
    line = open_line(camera_spec=spec, db=db, device="auto")
    try:
        runner = line.start(max_parts=parts)
        runner.wait()
        status = line.stop()
    finally:
        line.close()
    con = sqlite3.connect(db)
    stages = con.execute(
        "select avg(t_grab_ms), avg(t_queue_ms), avg(t_preprocess_ms), avg(t_infer_ms), avg(t_decide_ms) from inspections where run_id=?",
        (status.run_id,),
    ).fetchone()
    con.close()
    assert status.parts == parts
    return {"pps": status.parts_per_s, "p50": status.latency_ms_p50, "p99": status.latency_ms_p99,
            "grab": stages[0], "queue": stages[1], "pre": stages[2], "infer": stages[3], "decide": stages[4]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", type=int, default=120)
    ap.add_argument("--folder", type=Path, default=resources.DEMO_SAMPLES)
    a = ap.parse_args()
    machine_is_idle()
    with tempfile.TemporaryDirectory() as tmp:
        res = {kind: run(f"{kind}:{a.folder}", a.parts, Path(tmp) / f"{kind}.db") for kind in ("sim", "emu")}
    print(f"{'camera':<6} {'parts/s':>8} {'p50 ms':>8} {'p99 ms':>8} | {'grab':>6} {'queue':>6} {'pre':>6} {'infer':>6} {'decide':>6}")
    for kind, r in res.items():
        print(f"{kind:<6} {r['pps']:8.1f} {r['p50']:8.1f} {r['p99']:8.1f} | {r['grab']:6.1f} {r['queue']:6.1f} {r['pre']:6.1f} {r['infer']:6.1f} {r['decide']:6.2f}")
    print(f"ratio emu/sim: throughput {res['emu']['pps'] / res['sim']['pps']:.2f}, latency p50 {res['emu']['p50'] / res['sim']['p50']:.2f}")
    print(f"inference share of p50 latency (emu): {res['emu']['infer'] / res['emu']['p50']:.2f}")


if __name__ == "__main__":
    main()
