"""The line's commands: `cameras` (what is connected), `run` (inspect headless, then a summary) and
`gui` (the operator window; the only command that imports Qt)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
from typing import TYPE_CHECKING, Any

from app.cli.common import StageProgress, default_camera_spec

if TYPE_CHECKING:
    from inspection.line import Line
    from inspection.plant.verdict_log import VerdictLog
    from inspection.record.forwarding import ForwardStatus
    from inspection.runtime.reject_gate import RejectStats
    from inspection.runtime.status import RunnerStatus


def cmd_cameras(args: argparse.Namespace) -> int:
    """The Basler cameras found, real and emulated, and the other camera specs."""
    from camera.spec import list_cameras

    cams = list_cameras()
    if not cams:
        print("No Basler cameras found (set PYLON_CAMEMU=N for N emulated ones). Simulated cameras: sim:DIR.")
        return 0
    print(f"{'SPEC':<24} {'KIND':<10} {'MODEL':<20} SERIAL")
    for c in cams:
        print(f"{c.spec:<24} {c.kind:<10} {c.model:<20} {c.serial}")
    print("Also: sim:DIR (simulated camera) and emu:DIR (Basler emulator playing image folder DIR).")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Open the line, run it until --parts or Ctrl-C (across PLC changeovers), close it, print what it did."""
    from inspection.errors import ConfigError

    if args.parts is not None and args.parts < 1:
        raise ConfigError(f"--parts must be at least 1, not {args.parts}.")
    from inspection.record.forwarding import forwarder_of

    line, events = _open_for_run(args)
    # With --db URL: the buffer's forwarder to the plant database (closed with the line).
    forwarder = forwarder_of(line.store)
    try:
        runs, gates = _run_until_done(line, args.parts)
    finally:
        line.close()
        if events is not None:
            events.close()
    status = runs[-1]
    plant = forwarder.status() if forwarder is not None else None
    summary = _run_summary(line, runs, gates, plant)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_run_summary(summary, status, plant)
    if status.state.value == "faulted" or line.failure:
        print(f"error: {line.failure or status.message}", file=sys.stderr)
        return 3
    return 0


def _open_for_run(args: argparse.Namespace) -> tuple[Line, VerdictLog | None]:
    """The line `run` asks for, and the verdict log (--events) listening to it."""
    from inspection.line import open_line
    from inspection.plant.verdict_log import VerdictLog

    events = VerdictLog(args.events) if args.events is not None else None  # a bad path fails before anything is opened
    try:
        line = open_line(
            camera_spec=args.camera,
            model=args.model,
            db=args.db,
            recipe=args.recipe,
            config=args.config,
            device=args.device,
            mode=args.mode,
            max_batch=args.max_batch,
            buffer=args.buffer,
        )
    except BaseException:
        if events is not None:
            events.close()
        raise
    if events is not None:
        line.add_result_listener(events)
    return line, events


def _run_until_done(line: Line, parts: int | None) -> tuple[list[RunnerStatus], list[RejectStats]]:
    """Start the line and wait until its run ends for good (a PLC's changeover starts a new run: the wait
    goes on); Ctrl-C stops it between parts. How each run ended, and its reject gate's counts."""
    line.start(max_parts=parts)
    interrupted: list[int] = []  # Ctrl-C: stop between parts (the handler takes no lock: the loop asks)
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(1))
    progress = StageProgress() if sys.stderr.isatty() else None
    try:
        while not line.wait(0.5):
            if interrupted:
                line.request_stop()
            st = line.status()
            if progress is not None and st is not None:
                hint = "" if parts else ", Ctrl-C stops"
                counts = f"{st.ok} OK, {st.ng} NG, {st.review} REVIEW, {st.parts_per_s:.1f}/s{hint}"
                progress("inspecting", st.parts, parts or 0, counts)
        if progress is not None:
            progress.close()
        line.stop()  # Ctrl-C here, while the last rows are committed, changes nothing
    finally:
        signal.signal(signal.SIGINT, previous)
    return list(line.run_statuses), list(line.reject_runs)  # the run, or the runs that changeovers split it into


def _run_summary(
    line: Line, runs: list[RunnerStatus], gates: list[RejectStats], plant: ForwardStatus | None
) -> dict[str, Any]:
    """What `run` did, as the JSON object `--json` prints: the counts over all its runs, the last run's figures."""
    status = runs[-1]
    total = {
        k: sum(getattr(r, k) for r in runs)
        for k in ("parts", "ok", "ng", "review", "dropped", "failed_grabs", "recorded")
    }
    summary: dict[str, Any] = {
        **total,
        "throughput_pps": round(status.parts_per_s, 3),
        "latency_ms_p50": round(status.latency_ms_p50, 2),
        "latency_ms_p99": round(status.latency_ms_p99, 2),
        "db": str(line.store.path),
        "run_id": status.run_id,
        "state": status.state.value,
        "message": status.message,
        "model": f"{line.inspector.info.name} v{line.inspector.info.version}",
        "cameras": status.cameras,
        "mode": status.mode,
        "hand_off_ms_per_part": round(status.hand_off_ms_per_part, 4),
        "commit_ms_per_row": round(status.commit_ms_per_row, 4),
    }
    summary["recipe"], summary["recipe_version"], summary["runs"] = line.recipe.name, line.recipe_version, len(runs)
    if gates:
        reject: dict[str, Any] = {
            k: sum(getattr(g, k) for g in gates) for k in ("pulses", "merged", "misses", "output_errors")
        }
        summary["reject"] = {**reject, "late_pulse_ms_max": round(max(g.late_pulse_ms_max for g in gates), 3)}
    if plant is not None:
        summary["plant_db"] = dataclasses.asdict(plant)
    return summary


def _print_run_summary(summary: dict[str, Any], status: RunnerStatus, plant: ForwardStatus | None) -> None:
    """The summary as a few lines of text."""
    s = summary
    print(
        f"{s['parts']} parts: {s['ok']} OK, {s['ng']} NG, {s['review']} REVIEW; "
        f"{s['dropped']} dropped, {s['failed_grabs']} failed grabs; {s['recorded']} recorded in {s['db']}"
        + (f" ({s['runs']} runs: recipe changeovers)" if s["runs"] > 1 else "")
    )
    print(
        f"{status.parts_per_s:.1f} parts/s, latency p50 {status.latency_ms_p50:.0f} ms, "
        f"p99 {status.latency_ms_p99:.0f} ms"
    )
    if (reject := s.get("reject")) is not None:
        print(
            f"reject output: {reject['pulses']} pulses ({reject['merged']} parts in a pulse already on), "
            f"{reject['misses']} misses"
        )
    if plant is not None:
        print(
            f"plant database {plant.server}: {plant.forwarded} rows forwarded, {plant.backlog} waiting"
            + (f" ({plant.last_error})" if plant.last_error else "")
        )


def cmd_gui(args: argparse.Namespace) -> int:
    """The operator window (Qt is imported here only)."""
    from app.gui.main import run_gui

    return run_gui(args, default_camera_spec())
