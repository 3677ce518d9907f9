"""A changeover on the pylon emulator (real pylon stack, real SQLite file): a PLC-style gate fires
the software trigger once per request, the recipe changes between parts without a restart, and
every row keeps its recipe's name and version and the lot."""

from __future__ import annotations

import json
import sqlite3

import pytest

from camera import TriggerMode
from inspection.errors import ConfigError
from inspection.line import open_line
from inspection.record.opening import open_record
from inspection.reports.figures import gather, shift_window
from inspection.settings.config import load_config
from inspection.settings.recipe import load_recipe
from inspection.settings.recipe_folder import recipe_indexes
from tests.fakes import wait_for


def test_changeover_between_parts_keeps_recipe_version_and_lot_in_every_row(tmp_path, samples):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "a.toml").write_text('name = "prod-a"\nindex = 1\n[camera]\npixel_format = "Mono8"\n', encoding="utf-8")
    (recipes / "b.toml").write_text(
        'name = "prod-b"\nindex = 2\n[camera]\npixel_format = "RGB8"\n[verdict]\nmin_defect_area_px = 3\n',
        encoding="utf-8",
    )
    (tmp_path / "station.toml").write_text('[recipes]\nfolder = "recipes"\n', encoding="utf-8")
    db = tmp_path / "line.db"
    line = open_line(
        camera_spec=f"emu:{samples}",
        db=db,
        config=tmp_path / "station.toml",
        recipe=recipes / "a.toml",
        device="cpu",
        external_trigger=True,
    )
    ndims: list[int] = []
    line.add_result_listener(lambda r: ndims.append(r.image.ndim))
    try:
        assert line.recipe.camera.trigger is TriggerMode.SOFTWARE and {
            k: load_recipe(p).name for k, p in recipe_indexes(recipes).items()
        } == {1: "prod-a", 2: "prod-b"}
        runner = line.start()
        line.set_lot("LOT-A1")
        for _ in range(3):
            line.trigger_gate.request()
        assert wait_for(lambda: runner.status().parts == 3)
        assert not wait_for(lambda: runner.status().parts > 3, timeout_s=1.0)  # no request, no part
        line.change_recipe_index(2)
        assert (
            line.recipe.name == "prod-b" and line.runner is not None and line.runner is not runner
        )  # a new run, same program
        line.set_lot("LOT-B1")
        for _ in range(2):
            line.trigger_gate.request()
        assert wait_for(lambda: line.runner.status().parts == 2)
        with pytest.raises(ConfigError, match="No recipe .* has index 9"):
            line.change_recipe_index(9)
        assert line.recipe.name == "prod-b" and line.runner.status().active  # a refused changeover changes nothing
        # The same content again is the same version; an edited recipe is a new one.
        (recipes / "a.toml").write_text(
            'name = "prod-a"\nindex = 1\n[camera]\npixel_format = "Mono8"\n[images]\nsave_ok_every = 1\n',
            encoding="utf-8",
        )
        line.change_recipe_index(1)
        line.trigger_gate.request()
        assert wait_for(lambda: line.runner.status().parts == 1)
        line.request_stop()  # Stop pressed: a changeover after it changes the recipe but starts no run
        line.change_recipe_index(2)
        assert line.recipe.name == "prod-b" and line.runner is None and line.wait(1.0)
        assert [s.parts for s in line.run_statuses] == [3, 2, 1]  # the runs since start(), each ended by a changeover
    finally:
        line.close()
    assert ndims == [2, 2, 2, 3, 3, 2]  # Mono8, then RGB8: the recipe's camera settings were applied
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT recipe, recipe_version, lot_id FROM inspections ORDER BY id").fetchall()
        runs = c.execute("SELECT recipe, recipe_version FROM runs ORDER BY id").fetchall()
        versions = c.execute("SELECT name, version FROM recipe_versions ORDER BY id").fetchall()
        switches = c.execute("SELECT who, detail_json FROM audit_log WHERE action = 'line_switched'").fetchall()
    # Each changeover that happened is in the audit trail, by the PLC; the refused one (index 9) is not.
    assert [(who, json.loads(detail)["recipe"].rsplit("/", 1)[-1]) for who, detail in switches] == [
        ("plc", "b.toml"),
        ("plc", "a.toml"),
        ("plc", "b.toml"),
    ]
    assert rows == [("prod-a", 1, "LOT-A1")] * 3 + [("prod-b", 1, "LOT-B1")] * 2 + [("prod-a", 2, "LOT-B1")]
    assert runs == [("prod-a", 1), ("prod-b", 1), ("prod-a", 2)]
    assert versions == [("prod-a", 1), ("prod-b", 1), ("prod-a", 2)]
    with open_record(db, read_only=True) as store:  # the shift report names each recipe version that ran
        (shift_id,) = {i for (i,) in sqlite3.connect(db).execute("SELECT DISTINCT shift_id FROM inspections")}
        data = gather(store, shift_window(store, shift_id), load_config().shifts.tz)
    assert data.recipes == ("prod-a v1", "prod-a v2", "prod-b v1")
