"""The operator window under load (run by bench/bench_gui.py; Qt lives in app/ only): Basler's
emulator free-running at its full rate into the demo model for 60 s, the window refreshing at 30 Hz.
Reports the longest GUI-thread stall (a 5 ms heartbeat timer's late ticks; target under 50 ms) and
the lag from a verdict being published to the window showing that part (target p99 under 100 ms),
with the parts inspected, shown and dropped, and - sampled every 10 s, so that a long `--seconds`
makes it a soak of the window - its resident memory, threads, open files and references to None
(PySide6 6.12.0 lost one at every call of a method returning nothing, and the window aborted after
minutes).

    .venv/bin/python bench/bench_gui.py [--seconds 60] [--model PKG] [--images DIR]

Uses a virtual screen when there is one (`xvfb-run -a .venv/bin/python bench/bench_gui.py`), else
Qt's offscreen platform. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtWidgets import QApplication

import resources

if TYPE_CHECKING:
    from app.gui.main_window import MainWindow

HEARTBEAT_MS = 5


def _resources() -> dict[str, float]:
    """RSS, threads, open files and references to None of this process, now (Linux)."""
    rss = next(
        (
            int(line.split()[1]) / 1024
            for line in Path("/proc/self/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        ),
        float("nan"),
    )
    return {
        "rss_mb": rss,
        "threads": len(os.listdir("/proc/self/task")),
        "fds": len(os.listdir("/proc/self/fd")),
        "none_refs": sys.getrefcount(None),
    }


def _arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--images", type=Path, default=resources.DEMO_SAMPLES)
    ap.add_argument(
        "--frame-rate", type=float, default=100.0, help="the emulator's free-run rate (it tops out near 100)"
    )
    ap.add_argument(
        "--json",
        type=Path,
        default=None,
        help="also write the main figures as JSON (bench/bench_pipeline.py reads them)",
    )
    return ap.parse_args()


def _open_window(a: argparse.Namespace, work: Path) -> tuple[QApplication, MainWindow] | str:
    """The window on a fresh station in `work`, logged in and its line open; else why not."""
    recipe = work / "free-run.toml"
    recipe.write_text(f'name = "bench-free-run"\n[camera]\ntrigger = "free-run"\nframe_rate = {a.frame_rate}\n')

    from app.gui.main import build_window
    from app.screenshot import tool_accounts, tool_login

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setStyleSheet(resources.STYLE_SHEET.read_text(encoding="utf-8"))
    args = argparse.Namespace(
        camera=f"emu:{a.images}", model=a.model, db=work / "bench.db", recipe=recipe, config=None, device="auto"
    )
    tool_accounts(args.db, "bench", "operator")
    window = build_window(args, "unused", QSettings(str(work / "gui.ini"), QSettings.Format.IniFormat))
    window.resize(1500, 860)
    window.show()
    if not tool_login(app, window, "bench"):
        return f"could not log in: {window.banner.text.text()}"
    deadline = time.monotonic() + 120
    while not window.start_button.isEnabled():
        app.processEvents()
        time.sleep(0.01)
        if time.monotonic() > deadline or window.banner.isVisible():
            return f"the line did not open: {window.banner.text.text()}"
    return app, window


class Probe:
    """What is measured on the GUI thread: the heartbeat's gaps, the time the window's own slots take,
    and Python's garbage collections."""

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self.last = time.perf_counter()
        self.spent: dict[str, list[float]] = {"refresh": [], "show_stats": []}  # the window's own work
        self.collections_ms: list[tuple[float, int, float]] = []  # (when, generation, ms) of the collections
        self._gc_started = 0.0
        self.heartbeat = QTimer()
        self.heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
        self.heartbeat.setInterval(HEARTBEAT_MS)
        self.heartbeat.timeout.connect(self.beat)

    def install(self, window: MainWindow) -> None:
        """Time the window's refresh and statistics slots; watch the garbage collections."""
        gc.callbacks.append(self.on_gc)
        window.timer.timeout.disconnect(window.refresh)
        window.timer.timeout.connect(self.timed("refresh", window.refresh))
        window.controller.stats.disconnect(window.show_stats)
        window.controller.stats.connect(self.timed("show_stats", window.show_stats))

    def timed(self, name: str, fn: Callable[..., None]) -> Callable[..., None]:
        def run(*args: Any) -> None:
            t = time.perf_counter()
            fn(*args)
            self.spent[name].append((time.perf_counter() - t) * 1000)

        return run

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            took = (time.perf_counter() - self._gc_started) * 1000
            self.collections_ms.append((self._gc_started - self.last, info["generation"], took))

    def beat(self) -> None:
        now = time.perf_counter()
        self.gaps.append((now - self.last) * 1000)
        self.last = now

    def stop(self) -> None:
        self.heartbeat.stop()
        gc.callbacks.remove(self.on_gc)


def _drive(app: QApplication, window: MainWindow, probe: Probe, seconds: float) -> tuple[float, list[dict[str, float]]]:
    """Start the line and run the Qt event loop for `seconds` as app.exec() would, the heartbeat
    ticking; the seconds it took and the process's resources sampled every 10 s."""
    window.start()
    while not window.controller.running:
        app.processEvents()
        time.sleep(0.005)
    window.display_lags_ms.clear()
    t0 = time.perf_counter()
    probe.last = t0
    probe.heartbeat.start()
    app.processEvents()
    end = time.monotonic() + seconds
    samples = [_resources()]
    next_sample = time.monotonic() + 10.0
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.001)
        if time.monotonic() >= next_sample:  # (a few microseconds every 10 s)
            samples.append(_resources())
            next_sample += 10.0
    samples.append(_resources())
    probe.stop()
    return time.perf_counter() - t0, samples


def main() -> int:
    a = _arguments()
    work = Path(tempfile.mkdtemp(prefix="lepton-bench-gui-"))
    os.environ["LEPTON_DATA_DIR"] = str(work)
    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        print(f"warning: 1-minute load is {load1:.2f}: another process shares the cores, timings are not clean")
    opened = _open_window(a, work)
    if isinstance(opened, str):
        print(opened)
        return 1
    app, window = opened
    probe = Probe()
    probe.install(window)
    elapsed, samples = _drive(app, window, probe, a.seconds)
    status = window.controller.status()
    lags = np.asarray(window.display_lags_ms)
    window.close()  # stops the line and closes the record in the background
    while not window.closed:
        app.processEvents()
        time.sleep(0.01)
    stall = np.asarray(probe.gaps) - HEARTBEAT_MS
    model = window.choices.recipe_name if window.choices else "?"
    print(
        f"{elapsed:.0f} s with the emulator free-running at {a.frame_rate:.0f} fps, window at 30 Hz, "
        f"platform {app.platformName()}, model {model}"
    )
    _print_figures(status, elapsed, lags, stall, probe)
    _print_resources(samples)
    print(
        f"verdict -> shown: p50 {np.percentile(lags, 50):.1f} ms, p99 {np.percentile(lags, 99):.1f} ms "
        f"(target < 100 ms: {np.percentile(lags, 99) / 100:.2f} of it), longest {lags.max():.1f} ms"
    )
    if a.json is not None:
        figures = {
            "seconds": elapsed,
            "parts": status.parts,
            "gui_stall_ms_max": float(stall.max()),
            "gui_stall_ms_p99": float(np.percentile(stall, 99)),
            "display_lag_ms_p99": float(np.percentile(lags, 99)),
        }
        a.json.write_text(json.dumps(figures))
    return 0


def _print_figures(status: Any, elapsed: float, lags: np.ndarray, stall: np.ndarray, probe: Probe) -> None:
    """The parts, the GUI thread's stalls, the window's own work and the garbage collections."""
    print(
        f"parts inspected {status.parts} ({status.parts / elapsed:.1f}/s), shown {lags.size} "
        f"(the rest were replaced by a newer part before a refresh), dropped {status.dropped}, "
        f"inspection latency p50 {status.latency_ms_p50:.0f} ms p99 {status.latency_ms_p99:.0f} ms"
    )
    print(
        f"GUI-thread stall: longest {stall.max():.1f} ms (target < 50 ms: {stall.max() / 50:.2f} of it), "
        f"p99 {np.percentile(stall, 99):.1f} ms, over {stall.size} heartbeats"
    )
    for name, spent in probe.spent.items():
        t = np.asarray(spent or [0.0])
        print(
            f"  in the window's {name}: {t.size} calls, p50 {np.percentile(t, 50):.1f} ms, "
            f"p99 {np.percentile(t, 99):.1f} ms, longest {t.max():.1f} ms"
        )
    full = [ms for _, g, ms in probe.collections_ms if g == 2]
    print(
        f"  Python garbage collections: {len(probe.collections_ms)}, of them {len(full)} full, "
        f"longest full {max(full, default=0):.0f} ms"
    )
    worst = np.argsort(stall)[-3:][::-1]
    gaps = probe.gaps
    print("  longest stalls at " + ", ".join(f"{sum(gaps[: i + 1]) / 1000:.1f} s ({stall[i]:.0f} ms)" for i in worst))


def _print_resources(samples: list[dict[str, float]]) -> None:
    """Memory, threads, open files and references to None after the first 10 s and at the end."""
    first, last = samples[min(1, len(samples) - 1)], samples[-1]  # (after the first 10 s: warmed up)
    low, high = min(x["rss_mb"] for x in samples[1:] or samples), max(x["rss_mb"] for x in samples)
    print(
        f"resources after 10 s -> at the end: RSS {first['rss_mb']:.0f} -> {last['rss_mb']:.0f} MB "
        f"(range {low:.0f}-{high:.0f}), threads {first['threads']} -> {last['threads']}, "
        f"open files {first['fds']} -> {last['fds']}, references to None {first['none_refs']} -> "
        f"{last['none_refs']} (a binding that loses them aborts the window)"
    )


if __name__ == "__main__":
    sys.exit(main())
