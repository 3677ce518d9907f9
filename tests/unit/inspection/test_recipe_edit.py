"""Thresholds set from the program: only the two keys change (comments kept), the result is checked
before it replaces the recipe, the packaged default is refused, and every change is audited."""

from __future__ import annotations

import difflib
import json
import shutil

import pytest

import resources
from inspection.access import audit
from inspection.access.users import Role
from inspection.engineering import recipe_edit
from inspection.errors import ConfigError
from inspection.record.opening import open_record
from inspection.settings.recipe import load_recipe
from tests.unit.inspection.test_users import make_people


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path / "data"))
    recipe = tmp_path / "line.toml"
    shutil.copyfile(resources.DEFAULT_RECIPE, recipe)
    store = open_record(tmp_path / "x.db")
    yield store, make_people(store)[Role.ENGINEER], recipe
    store.close()


def changed_lines(before: str, after: str) -> list[str]:
    return [d for d in difflib.ndiff(before.splitlines(), after.splitlines()) if d[:1] in "+-"]


def test_only_the_two_keys_change_and_comments_stay(setup):
    store, eng, recipe = setup
    before = recipe.read_text()
    old, new = recipe_edit.set_thresholds(store, eng, recipe, ok_below=0.25, ng_at="0.5")
    after = recipe.read_text()
    assert changed_lines(before, after) == [
        '- ok_below = "model"',
        '- ng_at = "model"',
        "+ ok_below = 0.25",
        "+ ng_at = 0.5",
    ]
    assert (load_recipe(recipe).ok_below, load_recipe(recipe).ng_at) == (0.25, 0.5)
    assert old == {"ok_below": "model", "ng_at": "model"} and new == {"ok_below": 0.25, "ng_at": 0.5}
    recipe_edit.set_thresholds(store, eng, recipe, ok_below="model")  # one key; the other stays
    assert (load_recipe(recipe).ok_below, load_recipe(recipe).ng_at) == (None, 0.5)
    entries = [(e.who, e.action, e.target, json.loads(e.detail_json)) for e in reversed(audit.entries(store, 2))]
    target = f"demo-ballscrew ({recipe})"
    assert entries == [
        ("engineer1", "thresholds_changed", target, {"old": old, "new": new}),
        ("engineer1", "thresholds_changed", target, {"old": new, "new": {"ok_below": "model", "ng_at": 0.5}}),
    ]


def test_keys_or_the_table_that_are_absent_are_added(setup):
    store, eng, recipe = setup
    recipe.write_text(
        'name = "short"  # a comment\n\n[verdict]\nmin_defect_area_px = 3  # kept\n\n[images]\nsave_ok_every = 0\n'
    )
    recipe_edit.set_thresholds(store, eng, recipe, ok_below=1, ng_at=2)
    text = recipe.read_text()
    assert "min_defect_area_px = 3  # kept\nok_below = 1.0\nng_at = 2.0\n\n[images]" in text
    r = load_recipe(recipe)
    assert (r.ok_below, r.ng_at, r.min_defect_area_px, r.save_ok_every) == (1.0, 2.0, 3, 0)
    recipe.write_text('name = "bare"\n')
    recipe_edit.set_thresholds(store, eng, recipe, ng_at=7.5)
    assert load_recipe(recipe).ng_at == 7.5 and recipe.read_text().startswith('name = "bare"\n')


def test_an_invalid_result_leaves_the_recipe_and_the_trail_alone(setup):
    store, eng, recipe = setup
    recipe_edit.set_thresholds(store, eng, recipe, ok_below=0.2, ng_at=0.4)
    before, entries = recipe.read_text(), audit.verify(store).entries
    with pytest.raises(ConfigError, match=f"exceeds verdict.ng_at \\(0.4\\) in recipe {recipe}"):
        recipe_edit.set_thresholds(store, eng, recipe, ok_below=0.9)
    with pytest.raises(ConfigError, match="must be a number or \"model\", not 'high'"):
        recipe_edit.set_thresholds(store, eng, recipe, ng_at="high")
    with pytest.raises(ConfigError, match="must be a number or \"model\", not 'nan'"):
        recipe_edit.set_thresholds(store, eng, recipe, ng_at="nan")
    with pytest.raises(ConfigError, match="Say which threshold"):
        recipe_edit.set_thresholds(store, eng, recipe)
    assert recipe.read_text() == before and audit.verify(store).entries == entries
    assert [p.name for p in recipe.parent.iterdir() if p.name.startswith(".")] == []  # nothing left aside


def test_the_packaged_default_recipe_is_refused(setup):
    store, eng, _ = setup
    before = resources.DEFAULT_RECIPE.read_text()
    with pytest.raises(ConfigError, match="copy it into the recipes folder"):
        recipe_edit.set_thresholds(store, eng, resources.DEFAULT_RECIPE, ng_at=0.5)
    assert resources.DEFAULT_RECIPE.read_text() == before


def test_a_change_whose_audit_entry_cannot_be_committed_puts_the_recipe_back(setup):
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    store, eng, recipe = setup
    before = recipe.read_bytes()
    entries = len(audit.entries(store, 1000))

    def refuse(*_args, **_kw):
        raise OSError(28, "No space left on device")

    event.listen(Session, "before_commit", refuse)
    try:
        with pytest.raises(OSError):
            recipe_edit.set_thresholds(store, eng, recipe, ng_at=0.9)
    finally:
        event.remove(Session, "before_commit", refuse)
    assert recipe.read_bytes() == before and len(audit.entries(store, 1000)) == entries  # no change, so none unaudited
    assert (
        sorted(p.name for p in recipe.parent.iterdir() if p.name.startswith(".line.toml")) == []
    )  # no temporary file left
