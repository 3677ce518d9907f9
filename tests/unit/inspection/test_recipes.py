"""Recipes in use: versions by content, PLC indexes, a recipe's shift pattern and retention, and the
software-trigger gate a PLC drives."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from camera.errors import GrabTimeout, TriggerNotReady
from camera.simulated import SimulatedCamera
from inspection.errors import ConfigError
from inspection.record.opening import open_record
from inspection.record.recipe_versions import recipe_version
from inspection.record.schema import RecipeVersion
from inspection.runtime.station import TriggerGate
from inspection.settings.config import load_config
from inspection.settings.recipe import load_recipe
from inspection.settings.recipe_folder import recipe_for_index, recipe_indexes
from tests.fakes import wait_for


def test_a_recipe_version_follows_its_content_and_settings_file(tmp_path):
    path = tmp_path / "bolt.toml"
    path.write_text('name = "bolt"\n', encoding="utf-8")
    with open_record(tmp_path / "r.db") as store:
        v1 = recipe_version(store, load_recipe(path))
        assert recipe_version(store, load_recipe(path)) == v1 == 1  # the same content: the same version
        path.write_text('name = "bolt"\n[verdict]\nmin_defect_area_px = 12\n', encoding="utf-8")
        assert recipe_version(store, load_recipe(path)) == 2  # edited: a new version
        (tmp_path / "cam.pfs").write_text("# one\n", encoding="utf-8")
        path.write_text(
            'name = "bolt"\n[verdict]\nmin_defect_area_px = 12\n[camera]\nsettings_file = "cam.pfs"\n', encoding="utf-8"
        )
        v3 = recipe_version(store, load_recipe(path))
        (tmp_path / "cam.pfs").write_text("# two\n", encoding="utf-8")
        assert recipe_version(store, load_recipe(path)) == v3 + 1 == 4  # the settings file changed
        path.write_text('name = "bolt"\n', encoding="utf-8")
        assert recipe_version(store, load_recipe(path)) == 1  # back to the first content
        (tmp_path / "nut.toml").write_text('name = "nut"\n', encoding="utf-8")
        assert recipe_version(store, load_recipe(tmp_path / "nut.toml")) == 1  # numbered per recipe
        with store.session() as s:
            rows = s.query(RecipeVersion).filter_by(name="bolt").order_by(RecipeVersion.version).all()
        assert [r.version for r in rows] == [1, 2, 3, 4]
        assert '"min_defect_area_px":12' in rows[1].content_json


def test_recipes_are_picked_by_their_plc_index(tmp_path):
    (tmp_path / "a.toml").write_text('name = "prod-a"\nindex = 1\n', encoding="utf-8")
    (tmp_path / "b.toml").write_text('name = "prod-b"\nindex = 7\n', encoding="utf-8")
    (tmp_path / "c.toml").write_text('name = "no-plc"\n', encoding="utf-8")  # index 0: not selectable
    assert {k: p.name for k, p in recipe_indexes(tmp_path).items()} == {1: "a.toml", 7: "b.toml"}
    assert recipe_for_index(tmp_path, 7).name == "b.toml"
    with pytest.raises(ConfigError, match=r"No recipe in .* has index 3 \(indexes there: 1, 7\)\."):
        recipe_for_index(tmp_path, 3)
    (tmp_path / "d.toml").write_text('name = "prod-d"\nindex = 7\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="both have index 7"):
        recipe_indexes(tmp_path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("index = -1\n", "index in recipe .* must be a whole number from 0 to 9,999"),
        ('[shifts]\nnames = ["X"]\nstarts = []\n', "need as many names as starts"),
        ("[images]\nkeep_rejects_days = -5\n", "images.keep_rejects_days in recipe .* must be a whole number from 0"),
        ('[camera]\nsettings_file = "gone.pfs"\n', "camera settings file .*gone.pfs of recipe .* does not exist"),
    ],
)
def test_bad_recipe_keys_are_refused_in_one_sentence(tmp_path, text, message):
    (tmp_path / "r.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_recipe(tmp_path / "r.toml")


def test_a_recipe_brings_its_shift_pattern_and_reject_retention(tmp_path):
    (tmp_path / "r.toml").write_text(
        '[shifts]\nnames = ["Day", "Night"]\nstarts = ["07:00", "19:00"]\n[images]\nkeep_rejects_days = 90\n',
        encoding="utf-8",
    )
    (tmp_path / "c.toml").write_text('[line]\ntimezone = "Europe/Berlin"\n', encoding="utf-8")
    config = load_config(tmp_path / "c.toml")
    in_force = load_recipe(tmp_path / "r.toml").in_force(config)
    assert in_force.shifts.names == ("Day", "Night") and str(in_force.shifts.tz) == "Europe/Berlin"
    name, start, _ = in_force.shifts.shift_at(dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC))
    assert name == "Day" and start == dt.datetime(2026, 7, 1, 5, 0, tzinfo=dt.UTC)  # 07:00 in Berlin (CEST)
    assert in_force.retention.keep_rejects_days == 90
    assert in_force.retention.max_image_mb == config.retention.max_image_mb
    assert load_recipe().in_force(config) == config  # the default recipe leaves the station's


def test_the_trigger_gate_lets_each_camera_fire_once_per_request():
    gate = TriggerGate()
    gate.sync(2)
    assert not gate.take(0, 0.01)
    gate.request()
    gate.request()
    assert gate.take(0, 0.01) and gate.take(1, 0.01) and gate.take(0, 0.01)
    assert not gate.take(0, 0.01)  # two requests, two triggers for camera 0
    gate.give_back(0)  # a trigger that gave no frame is fired again
    assert gate.take(0, 0.01)
    assert gate.take(1, 0.01) and not gate.take(1, 0.01)
    gate.request()
    gate.sync(2)  # a new run: requests not taken are dropped
    assert not gate.take(0, 0.01) and not gate.take(1, 0.01)
    gate.request()
    assert gate.take(0, 0.01)
    gate.cancel()  # a request that timed out is dropped for every camera
    assert not gate.take(1, 0.01)
    assert gate.skipped(1) == 1 and gate.skipped(1) == 0 and gate.skipped(0) == 0  # camera 1 never images that part
    gate.give_back(0)  # (camera 0 was not ready after all): a cancelled request is not fired again
    assert not gate.take(0, 0.01)


def test_a_waiting_camera_fires_as_soon_as_a_request_comes():
    gate = TriggerGate()
    gate.sync(1)
    took = []
    t = threading.Thread(target=lambda: took.append(gate.take(0, 10.0)))
    t.start()
    gate.request()
    t.join(10.0)
    assert took == [True]


class _Stalling(SimulatedCamera):
    """A simulated camera whose next grabs time out: `not_ready` before its software trigger is fired,
    `lost` after it was fired (the frame never came)."""

    def __init__(self, folder, timeouts: list[type]) -> None:
        super().__init__(folder)
        self.timeouts = timeouts

    def grab(self, timeout_s: float = 1.0):
        if self.timeouts:
            raise self.timeouts.pop(0)("stalled")
        return super().grab(timeout_s)


@pytest.mark.parametrize("timeout, parts", [(TriggerNotReady, 1), (GrabTimeout, 0)])
def test_a_request_whose_trigger_was_not_fired_fires_later_and_a_fired_one_not_twice(
    make_line, samples, timeout, parts
):
    line = make_line(camera=_Stalling(samples, [timeout]))
    line.trigger_gate = TriggerGate()
    runner = line.start()
    line.trigger_gate.request()
    assert wait_for(lambda: not line.cameras[0].timeouts)  # the stall happened
    if parts:
        assert wait_for(lambda: runner.status().parts == parts)
    assert not wait_for(lambda: runner.status().parts > parts, timeout_s=1.0)
