"""Shared by the PLC handshake tests: a station on the pylon emulator with the PLC link on loopback,
and the handshake a PLC program runs, driven through a protocol's real client (`plc_clients.PlcClient`)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from inspection.line import Line, open_line
from inspection.plant.link import PlcLink
from inspection.plant.signals import ErrorCode
from inspection.record.schema import Inspection
from tests.fakes import free_port, wait_for
from tests.integration.plc_clients import PlcClient

RECIPES = {1: "prod-a", 2: "prod-b"}


@contextlib.contextmanager
def plc_station(tmp_path: Path, samples: Path, protocol: str) -> Iterator[tuple[Line, PlcLink, Path]]:
    """A running line (software trigger, recipes prod-a = 1 and prod-b = 2) with its PLC link on 127.0.0.1."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "a.toml").write_text('name = "prod-a"\nindex = 1\n', encoding="utf-8")
    (recipes / "b.toml").write_text('name = "prod-b"\nindex = 2\n[verdict]\nmin_defect_area_px = 3\n', encoding="utf-8")
    config = tmp_path / "station.toml"
    config.write_text(
        f'[recipes]\nfolder = "recipes"\n\n[plc]\nenabled = true\nprotocol = "{protocol}"\n'
        f'host = "127.0.0.1"\nport = {free_port()}\nheartbeat_s = 0.2\n',
        encoding="utf-8",
    )
    db = tmp_path / "line.db"
    line = open_line(camera_spec=f"emu:{samples}", db=db, config=config, recipe=recipes / "a.toml", device="cpu")
    try:
        link = line.plc  # ([plc] enabled: open_line started the link, and the gate fires on its Trigger)
        assert link is not None and line.trigger_gate is not None
        line.start()
        yield line, link, db
    finally:
        line.close()


# Polled as often as a PLC scans (never a timing assertion): True once it holds, False after the timeout.
until = functools.partial(wait_for, poll_s=0.002)


@dataclasses.dataclass
class Part:
    part_id: str
    ok: bool
    ng: bool
    defect: str
    seq: int
    recipe: str
    recipe_version: int


def cycle(plc: PlcClient) -> Part:
    """One part as a PLC runs it: Trigger, wait for ResultReady, read the result, ResultAck, wait for Ready."""
    assert until(lambda: plc.read("Ready")), "the station never became Ready"
    plc.write("Trigger", True)
    assert until(lambda: plc.read("ResultReady")), "no ResultReady after Trigger"
    assert not plc.read("Busy")
    part = Part(
        plc.read("PartId"),
        plc.read("ResultOK"),
        plc.read("ResultNG"),
        plc.read("DefectClass"),
        plc.read("PartSeq"),
        plc.read("RecipeName"),
        plc.read("RecipeVersion"),
    )
    plc.write("Trigger", False)
    plc.write("ResultAck", True)
    assert until(lambda: not plc.read("ResultReady"))
    assert not plc.read("ResultOK") and not plc.read("ResultNG")
    plc.write("ResultAck", False)
    return part


def drive_handshake(plc: PlcClient, line: Line, parts_a: int = 20, parts_b: int = 4) -> list[Part]:
    """The whole handshake: heartbeat, lot, parts on recipe 1, RecipeIndex 2, parts on it, an unknown index."""
    beats = [plc.read("Heartbeat")]

    def toggled_twice() -> bool:
        if (beat := plc.read("Heartbeat")) != beats[-1]:
            beats.append(beat)
        return len(beats) >= 3

    assert until(toggled_twice), beats
    assert plc.read("RecipeName") == "prod-a" and plc.read("RecipeIndexActive") == 1 and not plc.read("Error")
    plc.write("LotId", "LOT-7")
    parts = [cycle(plc) for _ in range(parts_a)]
    plc.write("RecipeIndex", 2)
    assert until(lambda: plc.read("RecipeName") == "prod-b" and plc.read("Ready"), 60), "the recipe did not change"
    assert plc.read("RecipeIndexActive") == 2 and line.recipe.name == "prod-b"
    parts += [cycle(plc) for _ in range(parts_b)]
    plc.write("RecipeIndex", 9)  # no recipe has it
    assert until(lambda: plc.read("Error") and plc.read("ErrorCode") == ErrorCode.RECIPE_UNKNOWN)
    assert line.recipe.name == "prod-b"
    plc.write("ResultAck", True)  # acknowledges the error
    assert until(lambda: not plc.read("Error"))
    plc.write("ResultAck", False)
    return parts


def check_record(db: Path, parts: list[Part], line: Line) -> None:
    """Each part the PLC saw is the row recorded for it: its verdict, recipe, recipe version and lot."""
    line.stop()  # every row committed
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as c:
            rows = {r.part_id: r for r in c.execute(sa.select(Inspection).where(Inspection.view == 0))}
    finally:
        engine.dispose()
    assert len(rows) == len(parts) and {p.part_id for p in parts} == set(rows)  # one row per trigger, no other
    for p in parts:
        row = rows[p.part_id]
        verdict = row.part_verdict or row.verdict
        assert (p.ok, p.ng) == (verdict == "OK", verdict != "OK"), (p, verdict)
        assert p.defect == {"OK": "", "REVIEW": "review"}.get(verdict, p.defect) and (verdict != "NG" or p.defect)
        assert (row.recipe, row.recipe_version, row.lot_id, row.seq) == (p.recipe, p.recipe_version, "LOT-7", p.seq)
    names = [p.recipe for p in parts]
    assert names == sorted(names) and set(names) == {"prod-a", "prod-b"}  # prod-a, then prod-b after RecipeIndex 2
    assert any(p.ok for p in parts) and any(p.ng for p in parts)  # the samples hold good and defective parts
