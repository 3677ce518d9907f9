from __future__ import annotations

import datetime as dt

import pytest

from camera import TriggerMode
from inspection.config import load_config, load_recipe
from inspection.errors import ConfigError

UTC = dt.timezone.utc


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_load():
    cfg, rcp = load_config(), load_recipe()
    assert cfg.shifts.names == ("A", "B", "C") and cfg.queue_size >= 1
    assert rcp.model.is_file() and rcp.ok_below is None and rcp.camera.trigger is TriggerMode.SOFTWARE


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match="'verdict.ng_att'"):
        load_recipe(write(tmp_path, "r.toml", "[verdict]\nng_att = 3\n"))
    with pytest.raises(ConfigError, match="'runner.queue'"):
        load_config(write(tmp_path, "c.toml", "[runner]\nqueue = 3\n"))


def test_bad_values_are_one_sentence(tmp_path):
    with pytest.raises(ConfigError, match="must be int"):
        load_config(write(tmp_path, "c.toml", "[runner]\nqueue_size = 'big'\n"))
    with pytest.raises(ConfigError, match="pixel format"):
        load_recipe(write(tmp_path, "r.toml", "[camera]\npixel_format = 'Bayer'\n"))
    with pytest.raises(ConfigError, match="exceeds"):
        load_recipe(write(tmp_path, "r.toml", "[verdict]\nok_below = 5\nng_at = 2\n"))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_recipe(write(tmp_path, "r.toml", "[verdict\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_recipe(tmp_path / "none.toml")
    with pytest.raises(ConfigError, match="time zone"):
        load_config(write(tmp_path, "c.toml", "[line]\ntimezone = 'Mars/Olympus'\n"))


def test_recipe_overrides_and_relative_model(tmp_path):
    r = load_recipe(write(tmp_path, "r.toml", "name = 'p1'\nmodel = 'm.lpkg'\n[verdict]\nng_at = 9\n[camera]\ntrigger = 'hardware'\n"))
    assert r.name == "p1" and r.model == tmp_path / "m.lpkg" and r.ng_at == 9.0 and r.ok_below is None
    assert r.camera.trigger is TriggerMode.HARDWARE


def test_shifts_cross_midnight_in_the_line_time_zone(tmp_path):
    cfg = load_config(write(tmp_path, "c.toml", "[line]\ntimezone = 'Europe/Berlin'\n[shifts]\nnames = ['day', 'night']\nstarts = ['06:00', '18:00']\n"))
    # 02:00 UTC on 15 Jan = 03:00 Berlin: the night shift that began at 18:00 Berlin (17:00 UTC) on the 14th.
    name, start, end = cfg.shifts.shift_at(dt.datetime(2026, 1, 15, 2, 0, tzinfo=UTC))
    assert name == "night"
    assert start == dt.datetime(2026, 1, 14, 17, 0, tzinfo=UTC) and end == dt.datetime(2026, 1, 15, 5, 0, tzinfo=UTC)
    name, start, _ = cfg.shifts.shift_at(dt.datetime(2026, 7, 15, 4, 30, tzinfo=UTC))  # summer: 06:30 Berlin
    assert name == "day" and start == dt.datetime(2026, 7, 15, 4, 0, tzinfo=UTC)


def test_alarm_limits_load_and_bad_ones_are_one_sentence(tmp_path):
    cfg = load_config(write(tmp_path, "c.toml", "[alarms]\nconsecutive_ng = 3\nng_rate_limit = 0.1\n"))
    assert (cfg.alarms.consecutive_ng, cfg.alarms.ng_rate_limit, cfg.alarms.ng_rate_window) == (3, 0.1, 50)
    with pytest.raises(ConfigError, match="ng_rate_limit a share"):
        load_config(write(tmp_path, "c.toml", "[alarms]\nng_rate_limit = 30\n"))


def test_recipes_folder_lists_valid_recipes_by_name(tmp_path):
    from inspection.config import find_recipes

    write(tmp_path, "b.toml", 'name = "bolt"\n')
    write(tmp_path, "a.toml", 'name = "washer"\n[camera]\ntrigger = "free-run"\n')
    write(tmp_path, "bad.toml", "[verdict]\nng_att = 3\n")  # left out, with a warning
    assert [name for name, _ in find_recipes(tmp_path)] == ["bolt", "washer"]
    assert find_recipes(tmp_path / "missing") == []


def test_review_classes_are_distinct_defect_names(tmp_path):
    assert load_recipe(write(tmp_path, "r.toml", '[review]\nclasses = ["pitting", "scratch"]\n')).defect_classes == ("pitting", "scratch")
    assert load_recipe().defect_classes == ()  # the default: the model's own classes
    for bad in ('["pitting", "pitting"]', '["good"]', '[""]', '[3]'):
        with pytest.raises(ConfigError, match="review.classes"):
            load_recipe(write(tmp_path, "r.toml", f"[review]\nclasses = {bad}\n"))
