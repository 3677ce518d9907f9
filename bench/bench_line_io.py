"""The station on its line, timed: the PLC handshake over OPC UA and Modbus TCP (a real client on
loopback against the station on the pylon emulator with the demo model), the reject gate's pulses,
and a changeover. Prints one table; every figure is measured in this run.

Ratios: the handshake's round trip (the client writes Trigger ... reads ResultReady) over the
line's own trigger-to-verdict latency for the same parts (what the link and the client's polling
add), and a pulse's lateness over its pulse width.

    .venv/bin/python bench/bench_line_io.py [--parts 40]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("PYLON_CAMEMU", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import resources  # noqa: E402
from inspection.line import Line, open_line  # noqa: E402

NAMESPACE = "urn:lepton-inspect:plc"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def until(predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the station did not answer")


def station(work: Path, protocol: str, extra: str = "") -> Line:
    config = work / f"{protocol}.toml"
    config.write_text(
        "[alarms]\nmin_free_disk_mb = 0\n[retention]\nmin_free_mb = 0\n"
        f'[plc]\nenabled = true\nprotocol = "{protocol}"\nhost = "127.0.0.1"\nport = {free_port()}\n{extra}',
        encoding="utf-8",
    )
    return open_line(
        camera_spec=f"emu:{resources.DEMO_SAMPLES}", db=work / f"{protocol}.db", config=config, device="cpu"
    )


def handshake(read: Callable[[str], Any], write: Callable[[str, bool], None], parts: int) -> list[float]:
    """Round trips (ms) of `parts` parts, run as a PLC does: Trigger, ResultReady, ResultAck, Ready."""
    out = []
    for _ in range(parts):
        until(lambda: read("Ready"))
        t0 = time.perf_counter()
        write("Trigger", True)
        until(lambda: read("ResultReady"))
        out.append((time.perf_counter() - t0) * 1000)
        write("Trigger", False)
        write("ResultAck", True)
        until(lambda: not read("ResultReady"))
        write("ResultAck", False)
    return out


def opcua(work: Path, parts: int) -> tuple[list[float], float]:
    from asyncua import ua
    from asyncua.sync import Client

    line = station(work, "opcua")
    try:
        line.start()
        with Client(line.plc.endpoint) as client:
            ns = client.get_namespace_index(NAMESPACE)
            nodes = {
                n.read_browse_name().Name: n for n in client.nodes.objects.get_child(f"{ns}:Station").get_children()
            }
            trips = handshake(
                lambda name: nodes[name].read_value(),
                lambda name, v: nodes[name].write_value(ua.DataValue(ua.Variant(v, ua.VariantType.Boolean))),
                parts,
            )
        return trips, line.stop().latency_ms_p50
    finally:
        line.close()


def modbus(work: Path, parts: int) -> tuple[list[float], float]:
    from pymodbus.client import ModbusTcpClient

    from inspection.plant.modbus import COILS, DISCRETE_INPUTS

    line = station(work, "modbus")
    try:
        line.start()
        host, port = line.plc.endpoint.removeprefix("modbus-tcp://").rsplit(":", 1)
        client = ModbusTcpClient(host, port=int(port))
        client.connect()
        try:
            trips = handshake(
                lambda name: client.read_discrete_inputs(DISCRETE_INPUTS.index(name), count=1).bits[0],
                lambda name, v: client.write_coil(COILS.index(name), v),
                parts,
            )
        finally:
            client.close()
        return trips, line.stop().latency_ms_p50
    finally:
        line.close()


def reject(work: Path, parts: int) -> Any:
    config = work / "reject.toml"
    config.write_text(
        "[alarms]\nmin_free_disk_mb = 0\n[retention]\nmin_free_mb = 0\n"
        "[reject]\nenabled = true\ndelay_ms = 300.0\npulse_ms = 10.0\n",
        encoding="utf-8",
    )
    line = open_line(camera_spec=f"emu:{resources.DEMO_SAMPLES}", db=work / "reject.db", config=config, device="cpu")
    try:
        assert line.start(max_parts=parts).wait(600)
        status = line.stop()
        return line.reject_stats(), status.ng + status.review
    finally:
        line.close()


def changeover(work: Path, times: int) -> list[float]:
    folder = work / "recipes"
    folder.mkdir()
    (folder / "a.toml").write_text('name = "a"\n', encoding="utf-8")
    (folder / "b.toml").write_text('name = "b"\n[camera]\npixel_format = "Mono8"\n', encoding="utf-8")
    line = open_line(
        camera_spec=f"emu:{resources.DEMO_SAMPLES}", db=work / "changeover.db", recipe=folder / "a.toml", device="cpu"
    )
    try:
        line.start()
        out = []
        for k in range(times):
            t0 = time.perf_counter()
            line.change_recipe(folder / ("b.toml" if k % 2 == 0 else "a.toml"), by="bench")
            out.append(time.perf_counter() - t0)
        return out
    finally:
        line.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", type=int, default=40)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lepton-bench-io-"))
    os.environ["LEPTON_DATA_DIR"] = str(work)
    rows = []
    for name, run in (("OPC UA", opcua), ("Modbus TCP", modbus)):
        trips, line_p50 = run(work, args.parts)
        p50 = statistics.median(trips)
        rows.append(
            (
                f"{name}: Trigger -> ResultReady, {len(trips)} parts",
                f"p50 {p50:.1f} ms, max {max(trips):.1f} ms; the line's own p50 {line_p50:.1f} ms; "
                f"ratio {p50 / line_p50:.2f}",
            )
        )
    stats, rejected = reject(work, 5 * args.parts)
    rows.append(
        (
            f"Reject gate, {5 * args.parts} parts, delay 300 ms, pulse 10 ms",
            f"{stats.pulses + stats.merged} pulses for {rejected} rejects, {stats.misses} misses; "
            f"start late by at most {stats.late_pulse_ms_max:.1f} ms "
            f"({stats.late_pulse_ms_max / 10:.2f} of the pulse), "
            f"width off by at most {stats.width_error_ms_max:.1f} ms",
        )
    )
    times = changeover(work, 6)
    rows.append(("Changeover while running (same model), 6 times", ", ".join(f"{t:.2f}" for t in times) + " s"))
    width = max(len(a) for a, _ in rows)
    for a, b in rows:
        print(f"{a:<{width}}  {b}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
