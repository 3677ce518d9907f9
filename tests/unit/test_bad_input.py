"""Bad input everywhere (issue 7): configs and recipes, image files, model input, databases.

Each bad input ends in one sentence of the one error type its layer raises - ConfigError,
ModelError, CameraError, StoreError - naming the file; nothing else is lost or changed. The
property-based tests (hypothesis) throw generated TOML documents, arbitrary bytes and truncated
real images at the readers.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import json
import math
import os
import sqlite3
import struct
import subprocess
import sys
import tomllib
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import resources
from camera.base import check_playback_folder
from camera.errors import CameraError
from inspection.errors import ConfigError, StoreError
from inspection.record.opening import open_record
from inspection.settings.config import Config, load_config
from inspection.settings.recipe import Recipe, load_recipe
from models.base import MAX_IMAGE_PIXELS, model_image
from models.datasets import decode_image, image_header, read_image
from models.errors import ModelError

REPO = Path(__file__).resolve().parents[2]
FAST = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def one_sentence(message: str, *names: object) -> None:
    assert "\n" not in message and message.strip(), message
    for name in names:
        assert str(name) in message, message


# == config and recipes ============================================================================


def toml_value(v: object) -> str:
    """A value as TOML (tomllib reads, nothing writes: this is the test's own writer)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_value(str(k))} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def toml_document(doc: dict) -> str:
    """Top-level tables as [sections] (deeper ones inline), everything else as key = value."""
    plain = [f"{toml_value(k)} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    tables = [
        f"[{toml_value(k)}]\n" + "".join(f"{toml_value(kk)} = {toml_value(vv)}\n" for kk, vv in v.items())
        for k, v in doc.items()
        if isinstance(v, dict)
    ]
    return "\n".join(plain) + "\n" + "\n".join(tables)


def _defaults(path: Path) -> dict:
    with path.open("rb") as fh:
        return tomllib.load(fh)


CONFIG_DEFAULT = _defaults(resources.DEFAULT_CONFIG)
RECIPE_DEFAULT = _defaults(resources.DEFAULT_RECIPE)

# Values near and beyond the edges of the real ranges, of every TOML type.
EDGES = [
    0,
    1,
    -1,
    2,
    8,
    24,
    25,
    48,
    49,
    60,
    61,
    1000,
    1001,
    65535,
    65536,
    100_000_000,
    100_000_001,
    2**63 - 1,
    -(2**63),
    0.0,
    -0.0,
    0.5,
    0.999,
    1.0,
    1.5,
    48.0,
    48.5,
    60.0,
    60.01,
    1e7,
    1.1e7,
    1e300,
    -1e-300,
    math.nan,
    math.inf,
    -math.inf,
]
WORDS = [
    "model",
    "06:00",
    "14:00",
    "22:00",
    "23:59:59",
    "24:00",
    "06:00+01:00",
    "UTC",
    "Europe/Berlin",
    "America",
    "Mars/Olympus",
    "Mono8",
    "RGB8",
    "Bayer",
    "software",
    "free-run",
    "hardware",
    "good",
    "pitting",
    "",
    " ",
    "m.lpkg",
    "a\x00b",
    "ünïcödé ✓ 🚀",
]
scalars = st.one_of(
    st.sampled_from(EDGES),
    st.sampled_from(WORDS),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.text(max_size=12),
    st.datetimes(),
    st.dates(),
    st.times(),
)
keys = st.one_of(
    st.text(min_size=1, max_size=10), st.sampled_from(["name", "roi", "classes", "x", "ng_att", "queue", "min_area_px"])
)
anything = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=3), max_leaves=8
)


def plausible(default: object) -> st.SearchStrategy:
    """A value of the default's own type (the kind a person would write), often in range, often not."""
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.one_of(st.integers(0, 100), st.sampled_from(EDGES), st.integers(-(2**63), 2**63 - 1))
    if isinstance(default, float):
        return st.one_of(st.floats(0, 1), st.integers(0, 60), st.sampled_from(EDGES), st.floats())
    if isinstance(default, str):
        return st.one_of(st.sampled_from(WORDS), st.text(max_size=12), st.integers(-1, 100), st.floats(-1, 100))
    if isinstance(default, list):
        return st.lists(
            st.one_of(st.sampled_from(WORDS), st.integers(-2, 70000), st.booleans(), st.floats(-1, 10)), max_size=6
        )
    return anything


@st.composite
def documents(draw: st.DrawFn, default: dict, depth: int = 0) -> dict:
    """A random subset of the real keys (plausible or random values), sometimes an unknown key,
    tables nested where the default has them (and an open table's entries, as verdict.classes).
    (The simplest draws - what hypothesis shrinks towards - are the plausible ones.)"""
    doc: dict = {}
    for key, value in default.items():
        if not draw(st.booleans()):
            continue
        if isinstance(value, dict):
            if value:
                doc[key] = draw(documents(value, depth + 1)) if draw(st.integers(0, 9)) < 9 else draw(anything)
            else:  # an open table: names -> tables of limits
                doc[key] = draw(
                    st.dictionaries(
                        keys,
                        st.dictionaries(
                            st.sampled_from(["min_area_px", "min_score", "min_scor"]), plausible(0), max_size=2
                        )
                        | anything,
                        max_size=2,
                    )
                )
        else:
            doc[key] = draw(plausible(value)) if draw(st.integers(0, 5)) < 5 else draw(anything)
    if draw(st.integers(0, 7)) == 7:
        doc[draw(keys)] = draw(anything)
    return doc


def check_config(cfg: Config) -> None:
    assert 1 <= cfg.queue_size <= 1000 and 1 <= cfg.commit_batch <= 100_000 and 0 < cfg.commit_interval_s <= 60
    a = cfg.alarms
    assert a.consecutive_ng >= 0 and a.ng_rate_window >= 1 and 0 <= a.ng_rate_limit <= 1 and a.min_free_disk_mb >= 0
    assert (
        cfg.shifts.names
        and len(cfg.shifts.names) == len(cfg.shifts.starts)
        and all(t.tzinfo is None for t in cfg.shifts.starts)
    )
    cfg.shifts.shift_at(dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC))  # a day of a clock change: still one shift


def check_recipe(r: Recipe) -> None:
    c = r.camera
    assert r.name.strip()
    assert c.exposure_us is None or 0 < c.exposure_us <= 1e7
    assert c.gain_db is None or 0 <= c.gain_db <= 48
    assert c.frame_rate is None or 0 < c.frame_rate <= 10_000
    assert c.roi is None or (c.roi.width >= 1 and c.roi.height >= 1)
    for t in (r.ok_below, r.ng_at):
        assert t is None or math.isfinite(t)
    assert 0 <= r.min_defect_area_px <= MAX_IMAGE_PIXELS and r.save_ok_every >= 0
    assert all(math.isfinite(limit.min_score) and limit.min_area_px >= 0 for limit in r.class_limits.values())


@FAST
@given(doc=documents(CONFIG_DEFAULT))
def test_generated_configs_load_or_say_why(tmp_path, doc):
    path = tmp_path / "station.toml"
    path.write_text(toml_document(doc), encoding="utf-8")
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        one_sentence(str(exc), path)
    else:
        check_config(cfg)


@FAST
@given(doc=documents(RECIPE_DEFAULT))
def test_generated_recipes_load_or_say_why(tmp_path, doc):
    path = tmp_path / "product.toml"
    path.write_text(toml_document(doc), encoding="utf-8")
    try:
        recipe = load_recipe(path)
    except ConfigError as exc:
        one_sentence(str(exc), path)
    else:
        check_recipe(recipe)


@FAST
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_arbitrary_bytes_as_config_or_recipe(tmp_path, data):
    path = tmp_path / "noise.toml"
    path.write_bytes(data)
    for load, check in ((load_config, check_config), (load_recipe, check_recipe)):
        try:
            check(load(path))
        except ConfigError as exc:
            one_sentence(str(exc), path)


def test_the_generators_reach_both_outcomes(tmp_path):
    """Guards the properties above: a generator that only ever made invalid files would test little."""
    outcomes = set()

    def probe_loader(default, load):
        """Feed `load` documents made from `default`, noting whether each loaded or was refused."""

        @settings(
            max_examples=150,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        )
        @given(doc=documents(default))
        def probe(doc):
            path = tmp_path / "probe.toml"
            path.write_text(toml_document(doc), encoding="utf-8")
            try:
                load(path)
                outcomes.add((load.__name__, "loaded"))
            except ConfigError:
                outcomes.add((load.__name__, "refused"))

        probe()

    for default, load in ((CONFIG_DEFAULT, load_config), (RECIPE_DEFAULT, load_recipe)):
        probe_loader(default, load)
    assert outcomes == {(f, o) for f in ("load_config", "load_recipe") for o in ("loaded", "refused")}


shift_names = st.lists(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=8).filter(
        lambda s: s.strip()
    ),
    min_size=1,
    max_size=4,
    unique=True,
)


@st.composite
def valid_configs(draw: st.DrawFn) -> dict:
    names = draw(shift_names)
    minutes = sorted(draw(st.lists(st.integers(0, 24 * 60 - 1), min_size=len(names), max_size=len(names), unique=True)))
    return {
        "line": {
            "name": draw(st.text(max_size=20)),
            "station": draw(st.text(max_size=20)),
            "timezone": draw(
                st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"])
            ),
        },
        "shifts": {"names": names, "starts": [f"{m // 60:02d}:{m % 60:02d}" for m in minutes]},
        "runner": {
            "queue_size": draw(st.integers(1, 1000)),
            "commit_batch": draw(st.integers(1, 100_000)),
            "commit_interval_s": draw(st.floats(1e-6, 60.0)),
        },
        "reports": {
            "automatic": draw(st.booleans()),
            "folder": draw(st.sampled_from(["", "reports", "QA reports/line 1", "ünï"])),
        },
        "alarms": {
            "consecutive_ng": draw(st.integers(0, 100_000)),
            "ng_rate_limit": draw(st.floats(0.0, 1.0)),
            "ng_rate_window": draw(st.integers(1, 100_000)),
            "min_free_disk_mb": draw(st.integers(0, 10**9)),
            "dropped_frames": draw(st.booleans()),
        },
    }


@FAST
@given(raw=valid_configs())
def test_a_valid_config_round_trips(tmp_path, raw):
    path = tmp_path / "station.toml"
    path.write_text(toml_document(raw), encoding="utf-8")
    cfg = load_config(path)
    assert (cfg.line, cfg.station, str(cfg.shifts.tz)) == (
        raw["line"]["name"],
        raw["line"]["station"],
        raw["line"]["timezone"],
    )
    assert list(cfg.shifts.names) == raw["shifts"]["names"]
    assert [t.strftime("%H:%M") for t in cfg.shifts.starts] == raw["shifts"]["starts"]
    r, a = raw["runner"], raw["alarms"]
    assert (cfg.queue_size, cfg.commit_batch, cfg.commit_interval_s) == (
        r["queue_size"],
        r["commit_batch"],
        r["commit_interval_s"],
    )
    assert (
        cfg.alarms.consecutive_ng,
        cfg.alarms.ng_rate_limit,
        cfg.alarms.ng_rate_window,
        cfg.alarms.min_free_disk_mb,
        cfg.alarms.dropped_frames,
    ) == tuple(a.values())
    assert cfg.reports_automatic == raw["reports"]["automatic"]
    assert cfg.reports_folder == (tmp_path / raw["reports"]["folder"] if raw["reports"]["folder"] else None)
    # Written back and read again: the same config.
    again = tmp_path / "again.toml"
    again.write_text(toml_document(raw), encoding="utf-8")
    assert load_config(again) == cfg


# == image files ==================================================================================


@functools.cache
def sample_files() -> dict[str, bytes]:
    """A real ball-screw sample as JPEG (as shipped) and as PNG, colour and grey."""
    jpg = sorted(resources.DEMO_SAMPLES.glob("*.jpg"))[0]
    bgr = cv2.imread(str(jpg))
    small = cv2.resize(bgr, (bgr.shape[1] // 4, bgr.shape[0] // 4))  # small: hypothesis decodes it many times
    return {
        "jpg": jpg.read_bytes(),
        "png": cv2.imencode(".png", small)[1].tobytes(),
        "grey.png": cv2.imencode(".png", cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))[1].tobytes(),
        "small.jpg": cv2.imencode(".jpg", small)[1].tobytes(),
    }


def check_image_or_error(data: bytes, color: bool) -> None:
    name = "part_0001.png"
    try:
        image = decode_image(data, name, color)
    except ModelError as exc:
        one_sentence(str(exc), name)
        return
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.size > 0
    assert image.ndim == 3 and image.shape[2] == 3 if color else image.ndim == 2


@FAST
@given(data=st.binary(max_size=2000), color=st.booleans())
def test_arbitrary_bytes_as_an_image(data, color):
    check_image_or_error(data, color)


@FAST
@given(which=st.sampled_from(["jpg", "png", "grey.png", "small.jpg"]), cut=st.floats(0.0, 1.0), color=st.booleans())
def test_real_images_cut_anywhere(capfd, which, cut, color):
    data = sample_files()[which]
    check_image_or_error(data[: int(len(data) * cut)], color)
    assert capfd.readouterr().err == ""  # refused from the header: no decoder chatter (libpng, libjpeg) on the terminal


@FAST
@given(
    which=st.sampled_from(["png", "small.jpg"]), at=st.floats(0.0, 1.0), byte=st.integers(0, 255), color=st.booleans()
)
def test_real_images_with_a_damaged_byte(which, at, byte, color):
    data = bytearray(sample_files()[which])
    data[min(int(len(data) * at), len(data) - 1)] = byte
    check_image_or_error(bytes(data), color)


@FAST
@given(
    prefix=st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"BM", b"II*\x00", b"MM\x00*", b"II+\x00"]),
    rest=st.binary(max_size=200),
    color=st.booleans(),
)
def test_arbitrary_bytes_behind_an_image_signature(prefix, rest, color):
    check_image_or_error(prefix + rest, color)


def test_truncation_is_named(tmp_path):
    data = sample_files()
    for name, words in (("png", "truncated PNG"), ("jpg", "truncated JPEG")):
        path = tmp_path / f"cut.{name}"
        path.write_bytes(data[name][: len(data[name]) * 2 // 3])
        with pytest.raises(ModelError, match=words) as err:
            read_image(path)
        one_sentence(str(err.value), path)


def png_with_header(width: int, height: int, bit_depth: int = 8, colour_type: int = 0) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def jpeg_with_header(width: int, height: int) -> bytes:
    data = bytearray(cv2.imencode(".jpg", np.zeros((8, 8), np.uint8))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bmp_with_header(width: int, height: int) -> bytes:
    return (
        b"BM"
        + struct.pack("<IHHI", 0, 0, 0, 54)
        + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 0, 0, 0, 0)
    )


def tiff_with_header(width: int, height: int) -> bytes:
    entries = [
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, 1, 8),
        (277, 3, 1, 1),
        (278, 4, 1, height),
        (279, 4, 1, 1),
    ]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 9) + b"\0" + ifd


@pytest.mark.parametrize(
    "make, width, height",
    [
        *(
            (make, w, h)
            for make in (png_with_header, jpeg_with_header, bmp_with_header, tiff_with_header)
            for w, h in ((60_000, 60_000), (65_535, 1_600))
        ),
        *(
            (make, 1 << 20, 1 << 20) for make in (png_with_header, bmp_with_header, tiff_with_header)
        ),  # JPEG sides stop at 65535
    ],
)
def test_huge_declared_sizes_are_refused_before_decoding(tmp_path, monkeypatch, make, width, height):
    """A header that declares gigapixels is refused from the header alone: the decoder never runs."""

    def no_decoding(*_args, **_kwargs):
        raise AssertionError("the decoder ran on a header that declares too many pixels")

    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    path = tmp_path / "huge.png"
    path.write_bytes(make(width, height))
    head = image_header(path.read_bytes())
    assert head is not None and (head.width, head.height) == (width, height)
    with pytest.raises(ModelError, match="megapixels") as err:
        read_image(path)
    one_sentence(str(err.value), path, f"{width} x {height}")


def test_headers_of_real_images_are_read(tmp_path):
    image = np.zeros((37, 53, 3), np.uint8)
    for ext in (".png", ".jpg", ".bmp", ".tiff"):
        head = image_header(cv2.imencode(ext, image)[1].tobytes())
        assert head is not None and (head.width, head.height, head.complete) == (53, 37, True), ext
    jpg = sample_files()["jpg"]
    assert (image_header(jpg).width, image_header(jpg).height) == cv2.imdecode(
        np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR
    ).shape[1::-1]


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "empty"),
        (b"hello, this is not an image\n", "not a PNG, JPEG, BMP or TIFF image"),
        (b"GIF89a" + b"\0" * 20, "not a PNG, JPEG, BMP or TIFF image"),
        (bytes(range(256)) * 4, "not a PNG, JPEG, BMP or TIFF image"),
        (b"\x89PNG\r\n\x1a\n\0\0", "not a PNG, JPEG, BMP or TIFF image"),  # the header itself cut off
        (png_with_header(0, 10), "declares a size of 0 x 10"),
        (png_with_header(10, 10)[:-12] + b"\0" * 12, "truncated PNG"),  # no IEND
        (png_with_header(10, 10), "damaged PNG"),  # IDAT too short for 10 x 10
    ],
)
def test_files_that_are_no_image(tmp_path, data, words):
    path = tmp_path / "frame.png"
    path.write_bytes(data)
    for color in (True, False):
        with pytest.raises(ModelError, match=words) as err:
            read_image(path, color)
        one_sentence(str(err.value), path)


def test_missing_and_unreadable_image_files(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ModelError, match="cannot be read") as err:
        read_image(tmp_path)  # a folder
    one_sentence(str(err.value), tmp_path)


def test_depths_and_layouts_are_converted(tmp_path):
    grey16 = np.full((6, 9), 100 * 256 + 77, np.uint16)  # 16-bit: scaled down to its high byte
    rgba = np.dstack([np.full((5, 4), v, np.uint8) for v in (30, 20, 10, 128)])  # BGRA on disk: B=30, G=20, R=10
    colour16 = np.dstack([np.full((4, 4), v * 256, np.uint16) for v in (1, 2, 3)])
    cv2.imwrite(str(tmp_path / "g16.png"), grey16)
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    cv2.imwrite(str(tmp_path / "c16.png"), colour16)
    cv2.imwrite(str(tmp_path / "one.png"), np.full((1, 1), 7, np.uint8))
    cv2.imwrite(str(tmp_path / "grey.jpg"), np.full((16, 16), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "grey.bmp"), np.full((3, 5), 200, np.uint8))
    cv2.imwrite(str(tmp_path / "colour.tiff"), np.dstack([np.full((3, 5), v, np.uint8) for v in (1, 2, 3)]))

    g = read_image(tmp_path / "g16.png", color=False)
    assert g.dtype == np.uint8 and g.shape == (6, 9) and (g == 100).all()
    c = read_image(tmp_path / "g16.png")  # grey file, colour model
    assert c.shape == (6, 9, 3) and (c == 100).all()
    assert (
        read_image(tmp_path / "rgba.png").tolist() == np.full((5, 4, 3), (10, 20, 30), np.uint8).tolist()
    )  # RGB, alpha dropped
    assert read_image(tmp_path / "rgba.png", color=False).shape == (5, 4)
    assert read_image(tmp_path / "c16.png")[0, 0].tolist() == [3, 2, 1]
    assert read_image(tmp_path / "one.png").shape == (1, 1, 3) and read_image(
        tmp_path / "one.png", color=False
    ).tolist() == [[7]]
    assert abs(int(read_image(tmp_path / "grey.jpg")[8, 8, 0]) - 90) <= 2
    assert read_image(tmp_path / "grey.bmp", color=False).tolist() == np.full((3, 5), 200).tolist()
    assert read_image(tmp_path / "colour.tiff")[0, 0].tolist() == [3, 2, 1]
    assert read_image(tmp_path / "colour.tiff", color=False).shape == (3, 5)


def test_a_playback_folder_plays_around_bad_files(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    (good / "a_empty.png").write_bytes(b"")
    (good / "b_text.png").write_text("not an image")
    (good / "c_cut.png").write_bytes(sample_files()["png"][:500])
    (good / "d_ok.png").write_bytes(sample_files()["png"])
    assert [p.name for p in check_playback_folder(good)] == ["a_empty.png", "b_text.png", "c_cut.png", "d_ok.png"]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a_empty.png").write_bytes(b"")
    (bad / "b_text.png").write_text("not an image")
    (bad / "c_cut.jpg").write_bytes(sample_files()["jpg"][:300])
    (bad / "d_rand.bmp").write_bytes(os.urandom(300))
    with pytest.raises(CameraError, match="None of the 4 images") as err:
        check_playback_folder(bad)
    one_sentence(str(err.value), bad)


# == datasets =====================================================================================


@pytest.mark.parametrize(
    "text, words",
    [
        (b"image,label,cls,mask,group\na.png,good\n", "line 2 has fewer fields"),
        (b"image,label,cls,mask,group\n,good,good,,g\n", "line 2 names no image"),
        (b"image,label,cls,mask,group\n\xff\xfe\x00a.png,good,good,,g\n", "not UTF-8"),
        (b"", "lacks the column"),
    ],
)
def test_a_bad_manifest_is_one_sentence(tmp_path, text, words):
    from models.datasets import load_dataset

    (tmp_path / "manifest.csv").write_bytes(text)
    with pytest.raises(ModelError, match=words) as err:
        load_dataset(tmp_path)
    one_sentence(str(err.value), tmp_path / "manifest.csv")


def test_a_corrupt_image_or_mask_in_a_dataset_names_the_file(tmp_path):
    from models.datasets import load_dataset, read_mask
    from models.evaluation import evaluate
    from tests.fakes import FakeInspector

    cv2.imwrite(str(tmp_path / "good.png"), np.full((8, 8), 100, np.uint8))
    (tmp_path / "cut.png").write_bytes(sample_files()["png"][:300])
    (tmp_path / "mask.png").write_text("no mask")
    (tmp_path / "manifest.csv").write_text(
        "image,label,cls,mask,group\ngood.png,good,good,,a\ncut.png,defect,pit,,b\ngood.png,defect,pit,mask.png,c\n"
    )
    ds = load_dataset(tmp_path)
    with pytest.raises(ModelError, match="truncated PNG") as err:
        evaluate(FakeInspector(), ds.samples)
    one_sentence(str(err.value), tmp_path / "cut.png")
    with pytest.raises(ModelError, match="not a PNG") as err:
        read_mask(ds.samples[2], (8, 8))
    one_sentence(str(err.value), tmp_path / "mask.png")


# == the model's input ============================================================================


@FAST
@given(
    shape=st.lists(st.integers(0, 6), min_size=0, max_size=4).map(tuple),
    dtype=st.sampled_from([np.uint8, np.uint16, np.bool_, np.int8, np.int32, np.float32, np.float64, np.uint32]),
)
def test_model_image_converts_or_refuses(shape, dtype):
    image = np.ones(shape, dtype)
    try:
        out = model_image(image)
    except ModelError as exc:
        one_sentence(str(exc))
        return
    assert out.dtype == np.uint8 and out.ndim in (2, 3) and out.size > 0 and out.flags.c_contiguous
    assert out.ndim == 2 or out.shape[2] == 3
    assert out.shape[:2] == shape[:2]


def test_model_image_conversions():
    assert model_image(np.full((2, 2), 0xABCD, np.uint16)).tolist() == [[0xAB] * 2] * 2
    assert model_image(np.array([[True, False]])).tolist() == [[255, 0]]
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 9, 200
    assert model_image(rgba).shape == (2, 2, 3) and (model_image(rgba)[..., 0] == 9).all()
    assert model_image(np.full((2, 3, 1), 5, np.uint8)).shape == (2, 3)
    assert model_image(np.dstack([np.full((2, 2), 5, np.uint8), np.full((2, 2), 255, np.uint8)])).tolist() == [
        [5, 5],
        [5, 5],
    ]
    for bad, words in (
        (np.zeros((4, 4), np.float32), "8- or 16-bit"),
        (np.zeros((0, 4), np.uint8), "empty"),
        (np.zeros((4, 4, 5), np.uint8), "shape"),
        (np.zeros(4, np.uint8), "shape"),
        ([[1, 2]], "image array"),
    ):
        with pytest.raises(ModelError, match=words):
            model_image(bad)


def test_the_demo_model_takes_any_size_depth_and_layout(demo_inspector):
    """The bundled model works at 512 x 208: other sizes are resized by its preprocessing, other
    depths and layouts converted, and what cannot be converted is one sentence (a ModelError),
    which the runner records as a REVIEW part with the error."""
    rng = np.random.default_rng(7)
    base = rng.integers(0, 256, (208, 512, 3), dtype=np.uint8)
    ref = demo_inspector.predict(base).score
    as16 = base.astype(np.uint16) * 256 + 255
    assert demo_inspector.predict(as16).score == pytest.approx(ref, rel=1e-5)  # 16-bit: the same part
    rgba = np.dstack([base, np.full((208, 512), 17, np.uint8)])
    assert demo_inspector.predict(rgba).score == pytest.approx(ref, rel=1e-5)  # RGBA: the alpha plane ignored
    for shape in ((1, 1), (1, 1, 3), (3000, 7), (7, 3000, 3), (208, 512, 1), (100, 100, 2), (1500, 1200)):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        p = demo_inspector.predict(image)
        assert p.anomaly_map.shape == shape[:2] and p.defect_mask.shape == shape[:2] and math.isfinite(p.score), shape
    for bad in (
        np.zeros((0, 10), np.uint8),
        np.zeros((10, 10, 5), np.uint8),
        np.zeros((10, 10), np.float64),
        np.zeros((2, 2, 2, 2), np.uint8),
    ):
        with pytest.raises(ModelError) as err:
            demo_inspector.predict(bad)
        one_sentence(str(err.value))


def test_a_grey_model_takes_colour_and_a_colour_model_grey():
    from models.features import InputSpec

    for grey in (True, False):
        spec = InputSpec((64, 96), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), grey)
        for image in (
            np.full((30, 40), 128, np.uint8),
            np.full((30, 40, 3), 128, np.uint8),
            np.full((30, 40, 4), 128, np.uint16),
        ):
            t = spec.tensor(image)
            assert tuple(t.shape) == (1, 3, 64, 96)


# == batch predict ================================================================================


def test_predict_reports_bad_files_and_inspects_the_rest(tmp_path):
    from inspection.runtime.files import collect_inputs, predict_files
    from tests.fakes import FakeInspector

    folder = tmp_path / "in"
    folder.mkdir()
    data = sample_files()
    (folder / "a_good.png").write_bytes(data["png"])
    (folder / "b_empty.png").write_bytes(b"")
    (folder / "c_cut.jpg").write_bytes(data["jpg"][:4000])
    (folder / "d_text.png").write_text("not an image")
    (folder / "e_huge.png").write_bytes(png_with_header(50_000, 50_000))
    cv2.imwrite(str(folder / "f_16bit.png"), np.full((20, 30), 40000, np.uint16))
    cv2.imwrite(str(folder / "g_rgba.png"), np.zeros((20, 30, 4), np.uint8))
    cv2.imwrite(str(folder / "h_one.png"), np.zeros((1, 1), np.uint8))
    (folder / "i_good.jpg").write_bytes(data["small.jpg"])
    files = collect_inputs([folder])
    seen = []
    summary = predict_files(FakeInspector(), files, tmp_path / "out", progress=lambda s, i, n: seen.append((i, n)))
    rows = list(csv.DictReader(summary.csv.open(encoding="utf-8")))
    assert [Path(r["image"]).name for r in rows] == [f.name for f in files]  # every file has its row, in order
    bad = {Path(r["image"]).name: r["error"] for r in rows if r["error"]}
    assert set(bad) == {"b_empty.png", "c_cut.jpg", "d_text.png", "e_huge.png"}
    for name, error in bad.items():
        one_sentence(error, folder / name)
    good = [r for r in rows if not r["error"]]
    assert len(good) == 5 and all(r["verdict"] in ("OK", "NG", "REVIEW") for r in good)
    assert all((tmp_path / "out" / r["map"]).is_file() and (tmp_path / "out" / r["mask"]).is_file() for r in good)
    assert summary.inspected == 5 and [f.name for f, _ in summary.failed] == sorted(bad)
    assert seen[-1] == (len(files), len(files))  # progress reaches the end though the last failures


def test_predict_goes_on_after_a_model_failure(tmp_path):
    from inspection.runtime.files import predict_files
    from tests.fakes import FakeInspector

    files = []
    for k in range(5):
        files.append(tmp_path / f"p{k}.png")
        cv2.imwrite(str(files[-1]), np.full((8, 8), 100 + k, np.uint8))
    summary = predict_files(FakeInspector(fail_every=2), files, tmp_path / "out")
    rows = list(csv.DictReader(summary.csv.open(encoding="utf-8")))
    assert [bool(r["error"]) for r in rows] == [False, True, False, True, False]
    assert all("injected model failure" in r["error"] and "\n" not in r["error"] for r in rows if r["error"])
    assert summary.inspected == 3


# == databases ====================================================================================


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def newer_schema_db(path: Path) -> Path:
    open_record(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    con.commit()
    con.close()
    return path


def foreign_db(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (name TEXT)")
    con.execute("INSERT INTO customers VALUES ('ACME')")
    con.commit()
    con.close()
    return path


BAD_DATABASES = {
    "newer": (newer_schema_db, "newer Lepton Inspect"),
    "random": (
        lambda p: (p.write_bytes(np.random.default_rng(3).bytes(8192)), p)[1],
        r"cannot be opened \(file is not a database\)",
    ),
    "empty": (lambda p: (p.write_bytes(b""), p)[1], "empty file"),
    "foreign": (foreign_db, "database of another program"),
    "text": (lambda p: (p.write_text("name,verdict\nA,OK\n"), p)[1], "cannot be opened"),
}


@pytest.mark.parametrize("kind", sorted(BAD_DATABASES))
@pytest.mark.parametrize("opener", [open_record, functools.partial(open_record, read_only=True)])
def test_bad_databases_are_one_sentence_and_left_as_they_were(tmp_path, kind, opener):
    make, words = BAD_DATABASES[kind]
    path = make(tmp_path / "lepton.db")
    before = sha(path)
    with pytest.raises(StoreError, match=words) as err:
        opener(path)
    one_sentence(str(err.value), path)
    assert sha(path) == before
    with pytest.raises(StoreError, match=words):  # the same again: no lock was left held
        opener(path)


def test_a_read_only_database_is_not_opened_for_writing(tmp_path):
    path = tmp_path / "archive.db"
    with open_record(path):
        pass
    path.chmod(0o444)
    before = sha(path)
    try:
        with pytest.raises(StoreError, match="read-only|not writable") as err:
            open_record(path)
        one_sentence(str(err.value), path)
        assert sha(path) == before
        with open_record(path, read_only=True) as store:  # reading it is what a read-only record is for
            assert store.counts()["parts"] == 0
    finally:
        path.chmod(0o644)


def test_a_database_locked_by_this_process(tmp_path):
    path = tmp_path / "lepton.db"
    with open_record(path):
        before = sha(path)
        with pytest.raises(StoreError, match="in use by another Lepton Inspect instance") as err:
            open_record(path)
        one_sentence(str(err.value), path)
        assert sha(path) == before
        with open_record(path, read_only=True) as store:  # reports run beside the station
            assert store.counts()["parts"] == 0


def test_a_database_locked_by_another_process(tmp_path):
    path = tmp_path / "lepton.db"
    open_record(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from inspection.record.opening import open_record; "
            "s = open_record(sys.argv[1]); print('held', flush=True); sys.stdin.read(); s.close()",
            str(path),
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        before = sha(path)
        with pytest.raises(StoreError, match="in use by another Lepton Inspect instance") as err:
            open_record(path)
        one_sentence(str(err.value), path)
        assert sha(path) == before
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    open_record(path).close()  # free again once the other instance has gone
