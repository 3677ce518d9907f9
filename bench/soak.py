"""Soak: an accelerated run of many parts (100,000 by default) through Basler's emulator, to show that
nothing grows with time. The line is the real one - emulator (software trigger, as fast as it
goes), runner, writer and image threads, a real SQLite file, the alarm monitor, the image
retention policy (here 200 MB and rejects kept 0 days, so that it deletes all along) and the
shift reporter - with a
fast model (tests.fakes.FakeInspector, a mean-grey scorer of ~0.1 ms), so that the pipeline, not
inference, sets the pace.

Every `--every` seconds it samples parts, resident memory (RSS), threads and open file descriptors;
at the end it prints the samples (and one after the line closed), the values after warm-up (the
first sample past 5 % of the parts) and at the last sample while running, and the rows recorded.

    .venv/bin/python bench/soak.py [--parts 100000] [--every 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("PYLON_CAMEMU", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import resources  # noqa: E402
from camera import CameraSettings, TriggerMode  # noqa: E402
from camera.spec import open_camera  # noqa: E402
from inspection.line import Line  # noqa: E402
from inspection.record.opening import open_record  # noqa: E402
from inspection.settings.config import load_config  # noqa: E402
from inspection.settings.recipe import load_recipe  # noqa: E402
from tests.fakes import FakeInspector  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sample(parts: int, t0: float) -> dict:
    return {
        "t_s": round(time.monotonic() - t0),
        "parts": parts,
        "rss_mb": round(rss_mb(), 1),
        "threads": threading.active_count(),
        "os_threads": len(os.listdir("/proc/self/task")),
        "fds": len(os.listdir("/proc/self/fd")),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", type=int, default=100_000)
    ap.add_argument("--every", type=float, default=30.0)
    ap.add_argument("--folder", type=Path, default=resources.DEMO_SAMPLES)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lepton-soak-"))
    os.environ["LEPTON_DATA_DIR"] = str(work / "data")
    try:
        config = load_config()
        config = dataclasses.replace(
            config,
            retention=dataclasses.replace(
                config.retention, max_image_mb=200, keep_rejects_days=0, check_interval_s=10.0
            ),
        )
        recipe = dataclasses.replace(
            load_recipe(), camera=CameraSettings(pixel_format="Mono8", trigger=TriggerMode.SOFTWARE)
        )
        spec = f"emu:{a.folder}"
        line = Line(
            store=open_record(work / "soak.db"),
            config=config,
            recipe=recipe,
            camera_spec=spec,
            inspector=FakeInspector(),
            cameras=[open_camera(spec)],
        )
        t0 = time.monotonic()
        samples = [sample(0, t0)]
        runner = line.start(max_parts=a.parts)
        while not runner.wait(a.every):
            samples.append(sample(runner.status().parts, t0))
            print(samples[-1], flush=True)
        status = line.stop()
        line.close()
        closed = sample(status.parts, t0)
        con = sqlite3.connect(work / "soak.db")
        rows, removed = con.execute(
            "select count(*), count(case when image_status = 'removed' then 1 end) from inspections"
        ).fetchone()
        con.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    warm = next((s for s in samples if s["parts"] >= 0.05 * a.parts), samples[-1])
    end = samples[-1]  # the last sample while the line ran
    print(f"\n{'t s':>6} {'parts':>8} {'RSS MB':>8} {'threads':>7} {'OS thr':>6} {'fds':>5}")
    for s in samples:
        print(f"{s['t_s']:>6} {s['parts']:>8} {s['rss_mb']:>8.1f} {s['threads']:>7} {s['os_threads']:>6} {s['fds']:>5}")
    print(
        f"closed {closed['t_s']:>6} {closed['parts']:>8} {closed['rss_mb']:>8.1f} {closed['threads']:>7} "
        f"{closed['os_threads']:>6} {closed['fds']:>5}"
    )
    print(
        f"\nparts {status.parts} in {closed['t_s']} s ({status.parts_per_s:.0f}/s), rows {rows}, "
        f"dropped {status.dropped}, failed grabs {status.failed_grabs}, images removed by retention {removed}"
    )
    print(
        f"while running, after warm-up ({warm['parts']} parts) -> last sample ({end['parts']} parts): "
        f"RSS {warm['rss_mb']:.1f} -> {end['rss_mb']:.1f} MB ({end['rss_mb'] - warm['rss_mb']:+.1f}), "
        f"threads {warm['threads']} -> {end['threads']} "
        f"(OS {warm['os_threads']} -> {end['os_threads']}), open files {warm['fds']} -> {end['fds']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
