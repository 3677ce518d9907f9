"""Camera pulled and returned mid-run: how fast is a removal detected, and how fast does
inspection resume? Basler's emulator plays the bundled ball-screw images (real pylon stack) into a
fast fake model (or the demo model, `--model demo`) with a real SQLite file; the camera is pulled
K times (pylon's `FirePnPCallback`; the emulator is back at once, so the reconnection is the
runner's own cost: DestroyDevice, re-enumerate, attach, open, the recipe's settings, start).
Per pull it prints the time from the pull to the faulted state, from there to inspection resumed,
and from the resumption to the next part inspected; then parts, rows and duplicates, and the
camera events in the log. A measurement, printed, never asserted.

    .venv/bin/python bench/fault_recovery.py [--pulls 5] [--parts-between 20] [--model fake|demo]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import resources
from camera import open_camera
from inspection.line import Line
from inspection.record.opening import open_record
from inspection.runtime.runner import Runner
from inspection.runtime.status import RunnerState
from inspection.settings.config import load_config
from inspection.settings.recipe import load_recipe

# pypylon is imported on first use (camera.pylon_driver), so this still comes before it.
os.environ.setdefault("PYLON_CAMEMU", "1")
# `python bench/fault_recovery.py` puts bench/, not the repository, on the path: the fake model (tests.fakes) needs it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def poll(predicate, timeout_s: float = 30.0) -> float:  # noqa: ANN001
    """Poll (1 ms) until predicate() holds; the perf_counter time it was first seen to hold. Keep
    predicates cheap (runner.state, not runner.status(): that one computes percentiles)."""
    deadline = time.perf_counter() + timeout_s
    while not predicate():
        if time.perf_counter() > deadline:
            raise SystemExit("timed out waiting for the line (see the log)")
        time.sleep(0.001)
    return time.perf_counter()


def make_line(db: Path, model: str) -> Line:
    spec = f"emu:{resources.DEMO_SAMPLES}"
    config = load_config()
    config = dataclasses.replace(
        config, reports_automatic=False, alarms=dataclasses.replace(config.alarms, min_free_disk_mb=0)
    )
    if model == "demo":
        from models.package import load_package

        inspector = load_package(resources.DEMO_MODEL, device="cpu")
        inspector.warmup()
    else:
        from tests.fakes import FakeInspector

        inspector = FakeInspector()
    return Line(
        store=open_record(db),
        config=config,
        recipe=load_recipe(),
        camera_spec=spec,
        inspector=inspector,
        cameras=[open_camera(spec)],
    )


def pull_once(line: Line, runner: Runner, k: int, between: int) -> tuple[float, float, float]:
    camera = line.camera
    start = runner.status().parts
    poll(lambda: runner.status().parts >= start + between)
    t_pull = time.perf_counter()
    camera.fire_removal()  # type: ignore[attr-defined]  (the emulator's)
    t_fault = poll(lambda: runner.state is RunnerState.FAULTED)
    t_back = poll(lambda: runner.state is RunnerState.RUNNING)
    parts = runner.status().parts
    t_part = poll(lambda: runner.status().parts > parts)
    status = runner.status()
    if (status.camera_losses, status.reconnects) != (k, k):
        raise SystemExit(
            f"pull {k}: {status.camera_losses} losses, {status.reconnects} reconnections (another fault?): "
            f"{status.message}"
        )
    return t_fault - t_pull, t_back - t_fault, t_part - t_back


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pulls", type=int, default=5, help="times the camera is pulled (default 5)")
    ap.add_argument("--parts-between", type=int, default=20, help="parts inspected before each pull (default 20)")
    ap.add_argument(
        "--model", choices=("fake", "demo"), default="fake", help="a fast fake model (default) or the demo model"
    )
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="  (log) %(message)s")
    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        print(f"warning: 1-minute load is {load1:.2f}; timings will be noisy")
    with tempfile.TemporaryDirectory(prefix="lepton-fault-") as tmp:
        os.environ.setdefault("LEPTON_DATA_DIR", tmp)
        line = make_line(Path(tmp) / "fault.db", a.model)
        try:
            runner = line.start()
            print(f"{'pull':>4} {'to faulted ms':>13} {'to resumed ms':>13} {'to next part ms':>15}")
            rows = []
            for k in range(1, a.pulls + 1):
                detect, resume, part = pull_once(line, runner, k, a.parts_between)
                rows.append((detect, resume, part))
                print(f"{k:>4} {detect * 1000:13.1f} {resume * 1000:13.1f} {part * 1000:15.1f}")
            line.alarms.check()
            status = line.stop()
        finally:
            line.close()
        con = sqlite3.connect(Path(tmp) / "fault.db")
        try:
            n, distinct = con.execute("select count(*), count(distinct part_id) from inspections").fetchone()
            end_state = con.execute("select end_state from runs").fetchone()[0]
            events = dict(
                con.execute("select level, count(*) from events where kind = 'camera' group by level").fetchall()
            )
        finally:
            con.close()
    assert status is not None
    for name, i in (("to faulted", 0), ("to resumed", 1)):
        values = [r[i] * 1000 for r in rows]
        print(f"{name}: median {statistics.median(values):.1f} ms, max {max(values):.1f} ms")
    print(
        f"parts {status.parts}, rows {n}, duplicates {n - distinct}, recorded {status.recorded}, "
        f"dropped {status.dropped}, failed grabs {status.failed_grabs}; "
        f"losses {status.camera_losses}, reconnects {status.reconnects}; run ended {end_state}; "
        f"camera events: {events.get('alarm', 0)} alarms, {events.get('info', 0)} returns "
        f"(losses closer together than the alarm monitor's {line.alarms.interval_s:g} s check share one)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
