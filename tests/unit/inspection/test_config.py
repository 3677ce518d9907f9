from __future__ import annotations

import datetime as dt

import pytest

from camera import TriggerMode
from inspection.errors import ConfigError
from inspection.settings.config import load_config
from inspection.settings.recipe import load_recipe

UTC = dt.UTC


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
    r = load_recipe(
        write(
            tmp_path, "r.toml", "name = 'p1'\nmodel = 'm.lpkg'\n[verdict]\nng_at = 9\n[camera]\ntrigger = 'hardware'\n"
        )
    )
    assert r.name == "p1" and r.model == tmp_path / "m.lpkg" and r.ng_at == 9.0 and r.ok_below is None
    assert r.camera.trigger is TriggerMode.HARDWARE


def test_shifts_cross_midnight_in_the_line_time_zone(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            "c.toml",
            "[line]\ntimezone = 'Europe/Berlin'\n[shifts]\nnames = ['day', 'night']\nstarts = ['06:00', '18:00']\n",
        )
    )
    # 02:00 UTC on 15 Jan = 03:00 Berlin: the night shift that began at 18:00 Berlin (17:00 UTC) on the 14th.
    name, start, end = cfg.shifts.shift_at(dt.datetime(2026, 1, 15, 2, 0, tzinfo=UTC))
    assert name == "night"
    assert start == dt.datetime(2026, 1, 14, 17, 0, tzinfo=UTC) and end == dt.datetime(2026, 1, 15, 5, 0, tzinfo=UTC)
    name, start, _ = cfg.shifts.shift_at(dt.datetime(2026, 7, 15, 4, 30, tzinfo=UTC))  # summer: 06:30 Berlin
    assert name == "day" and start == dt.datetime(2026, 7, 15, 4, 0, tzinfo=UTC)


def test_alarm_limits_load_and_bad_ones_are_one_sentence(tmp_path):
    cfg = load_config(write(tmp_path, "c.toml", "[alarms]\nconsecutive_ng = 3\nng_rate_limit = 0.1\n"))
    assert (cfg.alarms.consecutive_ng, cfg.alarms.ng_rate_limit, cfg.alarms.ng_rate_window) == (3, 0.1, 50)
    with pytest.raises(ConfigError, match="alarms.ng_rate_limit in config .*c.toml must be a share"):
        load_config(write(tmp_path, "c.toml", "[alarms]\nng_rate_limit = 30\n"))


def test_recipes_folder_lists_valid_recipes_by_name(tmp_path):
    from inspection.settings.recipe_folder import find_recipes

    write(tmp_path, "b.toml", 'name = "bolt"\n')
    write(tmp_path, "a.toml", 'name = "washer"\n[camera]\ntrigger = "free-run"\n')
    write(tmp_path, "bad.toml", "[verdict]\nng_att = 3\n")  # left out, with a warning
    assert [name for name, _ in find_recipes(tmp_path)] == ["bolt", "washer"]
    assert find_recipes(tmp_path / "missing") == []


def test_review_classes_are_distinct_defect_names(tmp_path):
    assert load_recipe(write(tmp_path, "r.toml", '[review]\nclasses = ["pitting", "scratch"]\n')).defect_classes == (
        "pitting",
        "scratch",
    )
    assert load_recipe().defect_classes == ()  # the default: the model's own classes
    for bad in ('["pitting", "pitting"]', '["good"]', '[""]', "[3]"):
        with pytest.raises(ConfigError, match="review.classes"):
            load_recipe(write(tmp_path, "r.toml", f"[review]\nclasses = {bad}\n"))


# Every number of a config or recipe has a checked range: the message names the key and the file.
CONFIG_OUT_OF_RANGE = [
    ("[runner]\nqueue_size = 0\n", "runner.queue_size"),
    ("[runner]\nqueue_size = 100000\n", "runner.queue_size"),
    ("[runner]\nqueue_size = 2.5\n", "'runner.queue_size' must be int"),
    ("[runner]\ncommit_batch = 0\n", "runner.commit_batch"),
    ("[runner]\ncommit_batch = -3\n", "runner.commit_batch"),
    ("[runner]\ncommit_interval_s = 0\n", "runner.commit_interval_s"),
    ("[runner]\ncommit_interval_s = 3600\n", "runner.commit_interval_s"),  # an hour of parts uncommitted
    ("[runner]\ncommit_interval_s = nan\n", "runner.commit_interval_s"),
    ("[runner]\ncommit_interval_s = inf\n", "runner.commit_interval_s"),
    ("[runner]\ncommit_interval_s = 1" + "0" * 400 + "\n", "'runner.commit_interval_s'"),  # an int no float holds
    ("[alarms]\nconsecutive_ng = -1\n", "alarms.consecutive_ng"),
    ("[alarms]\nng_rate_limit = -0.1\n", "alarms.ng_rate_limit"),
    ("[alarms]\nng_rate_limit = nan\n", "alarms.ng_rate_limit"),
    ("[alarms]\nng_rate_window = 0\n", "alarms.ng_rate_window"),
    ("[alarms]\nmin_free_disk_mb = -1\n", "alarms.min_free_disk_mb"),
    ("[alarms]\ndropped_frames = 1\n", "'alarms.dropped_frames' must be bool"),
    ("[shifts]\nnames = ['A', 'A', 'B']\n", "shifts.names"),
    ("[shifts]\nnames = ['A', 3, 'B']\n", "shifts.names"),
    (
        "[shifts]\nstarts = ['06:00+01:00', '14:00', '22:00']\n",
        "Shift starts",
    ),  # mixed aware/naive times once raised TypeError
    ("[shifts]\nstarts = ['14:00', '06:00', '22:00']\n", "Shift starts"),
    ("[line]\ntimezone = 'America'\n", "Time zone 'America'"),  # a folder of zones: IsADirectoryError before
    ("[line]\ntimezone = '" + "x" * 5000 + "'\n", "Time zone"),  # a name too long for the file system: OSError before
    ("[line.extra]\nx = 1\n", "Unknown key 'line.extra'"),
    ("[runner.deeper]\nx = 1\n", "Unknown key 'runner.deeper'"),
    ('[reports]\nfolder = "a\\u0000b"\n', "reports.folder"),
]


@pytest.mark.parametrize("text, words", CONFIG_OUT_OF_RANGE)
def test_config_values_out_of_range_name_the_key_and_the_file(tmp_path, text, words):
    path = write(tmp_path, "station.toml", text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert words in message and str(path) in message and "\n" not in message, message


RECIPE_OUT_OF_RANGE = [
    ("[camera]\nexposure_us = -5.0\n", "camera.exposure_us"),
    ("[camera]\nexposure_us = 1e9\n", "camera.exposure_us"),
    ("[camera]\nexposure_us = nan\n", "camera.exposure_us"),
    ("[camera]\ngain_db = 100.0\n", "camera.gain_db"),
    ("[camera]\ngain_db = nan\n", "camera.gain_db"),  # NaN >= 0 is False: it once meant "leave the camera's own"
    ("[camera]\ngain_db = -inf\n", "camera.gain_db"),
    ("[camera]\nframe_rate = -1.0\n", "camera.frame_rate"),
    ("[camera]\nframe_rate = 1e6\n", "camera.frame_rate"),
    ("[camera]\nroi = [0, 0, 100]\n", "camera.roi"),
    ("[camera]\nroi = [8, 8, 0, 0]\n", "camera.roi"),  # an offset with no size
    ("[camera]\nroi = [0, 0, 100000, 100]\n", "camera.roi"),
    ("[camera]\nroi = [true, 0, 10, 10]\n", "camera.roi"),
    ("[camera]\nroi = [0.5, 0, 10, 10]\n", "camera.roi"),
    ("[camera]\ntrigger = 'sometimes'\n", "Camera settings"),
    ("[verdict]\nng_at = nan\n", "verdict.ng_at"),
    ("[verdict]\nok_below = inf\n", "verdict.ok_below"),
    ("[verdict]\nng_at = true\n", "verdict.ng_at"),
    ("[verdict]\nng_at = [1]\n", "verdict.ng_at"),
    ("[verdict]\nfalse_reject = 1.5\n", "verdict.false_reject"),
    ("[verdict]\nreview_false_reject = nan\n", "verdict.review_false_reject"),
    ("[verdict]\nfalse_reject = 0.1\nreview_false_reject = 0.05\n", "verdict.review_false_reject"),
    ("[verdict]\nmin_defect_area_px = -1\n", "verdict.min_defect_area_px"),
    ("[verdict]\nmin_defect_area_px = 1000000000\n", "verdict.min_defect_area_px"),
    ("[verdict.classes.pitting]\nmin_area_px = -4\n", "verdict.classes.pitting.min_area_px"),
    ("[verdict.classes.pitting]\nmin_area_px = 4.5\n", "verdict.classes.pitting.min_area_px"),
    ("[verdict.classes.pitting]\nmin_score = nan\n", "verdict.classes.pitting.min_score"),
    ("[verdict.classes.pitting]\nmin_score = -0.5\n", "verdict.classes.pitting.min_score"),
    ("[verdict.classes.pitting]\nmin_scor = 0.5\n", "verdict.classes.pitting"),  # unknown key in an open table's entry
    ("[verdict.classes]\npitting = 3\n", "verdict.classes.pitting"),
    ("[images]\nsave_ok_every = -1\n", "images.save_ok_every"),
    ("[images]\nsave_ok_every = 10000000000\n", "images.save_ok_every"),
    ("[images.extra]\nx = 1\n", "Unknown key 'images.extra'"),
    ("[camera.extra]\nx = 1\n", "Unknown key 'camera.extra'"),
    ("name = '  '\n", "name"),
    ('[camera]\nsettings_file = "a\\u0000b.pfs"\n', "camera.settings_file"),
]


@pytest.mark.parametrize("text, words", RECIPE_OUT_OF_RANGE)
def test_recipe_values_out_of_range_name_the_key_and_the_file(tmp_path, text, words):
    path = write(tmp_path, "product.toml", text)
    with pytest.raises(ConfigError) as err:
        load_recipe(path)
    message = str(err.value)
    assert words in message and str(path) in message and "\n" not in message, message


def test_values_at_the_ends_of_their_ranges_load(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            "c.toml",
            "[runner]\nqueue_size = 1000\ncommit_batch = 1\ncommit_interval_s = 60\n"
            "[alarms]\nconsecutive_ng = 0\nng_rate_limit = 1\nng_rate_window = 1\nmin_free_disk_mb = 0\n",
        )
    )
    assert (cfg.queue_size, cfg.commit_batch, cfg.commit_interval_s) == (1000, 1, 60.0)
    assert cfg.alarms.ng_rate_limit == 1.0 and isinstance(cfg.alarms.ng_rate_limit, float)
    r = load_recipe(
        write(
            tmp_path,
            "r.toml",
            "[camera]\nexposure_us = 10000000\ngain_db = 48\nframe_rate = 10000\nroi = [65535, 0, 1, 1]\n"
            "[verdict]\nok_below = -1\nng_at = 0\nmin_defect_area_px = 100000000\n"
            "[verdict.classes.pitting]\nmin_area_px = 0\nmin_score = 0\n[images]\nsave_ok_every = 0\n",
        )
    )
    assert (
        r.camera.exposure_us == 1e7
        and r.camera.gain_db == 48.0
        and r.camera.frame_rate == 1e4
        and r.camera.roi.x == 65535
    )
    assert (r.ok_below, r.ng_at, r.min_defect_area_px, r.save_ok_every) == (-1.0, 0.0, 100_000_000, 0)
    # The "leave the camera's own" values.
    r = load_recipe(write(tmp_path, "r.toml", "[camera]\nexposure_us = 0\ngain_db = -3\nframe_rate = 0\n"))
    assert (r.camera.exposure_us, r.camera.gain_db, r.camera.frame_rate, r.camera.roi) == (None, None, None, None)


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff\xfe\x00\x01 not text", b"[runner]\nqueue_size = \xc3\x28\n", b"a = " + b"[" * 5000 + b"]" * 5000],
)
def test_a_file_that_is_not_toml_is_one_sentence(tmp_path, data):
    path = tmp_path / "c.toml"
    path.write_bytes(data)
    if data == b"":  # an empty file is an empty table: the defaults
        assert load_config(path).queue_size == load_config().queue_size
        return
    for load in (load_config, load_recipe):
        with pytest.raises(ConfigError, match="c.toml"):
            load(path)


def test_a_folder_given_as_the_file_is_one_sentence(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_recipe(tmp_path)
