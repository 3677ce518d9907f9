"""Station config and recipes: TOML files merged over the packaged defaults, unknown keys rejected."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
import os
import tomllib
import zoneinfo
from pathlib import Path
from typing import Any

import resources
from camera.base import CameraSettings, Roi, TriggerMode
from inspection.errors import ConfigError
from inspection.plc import PlcConfig, parse_plc
from inspection.reject import IoConfig, RejectConfig, parse_io_reject
from models.base import MAX_IMAGE_PIXELS

log = logging.getLogger(__name__)


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        with Path(path).open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"The {what} file {path} does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"The {what} file {path} is not valid TOML: {exc}.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"The {what} file {path} is not valid TOML: it is not UTF-8 text.") from None
    except RecursionError:
        raise ConfigError(f"The {what} file {path} nests arrays or tables too deeply.") from None
    except OSError as exc:
        raise ConfigError(f"The {what} file {path} cannot be read: {exc.strerror or exc}.") from None


def _show(value: Any, limit: int = 60) -> str:
    """A value as it goes into a message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_TYPE_NAMES = {str: "str", int: "int (a whole number)", float: "float", bool: "bool", list: "an array"}


def merge(default: dict[str, Any], user: dict[str, Any], where: str, file: str = "") -> dict[str, Any]:
    """`user` over `default`; a key or a type that the default does not have is an error.
    `where`: the table's dotted name; `file`: what the messages name, e.g. "recipe /x/r.toml"."""
    out = dict(default)
    at = f" in {file}" if file else ""
    for key, value in user.items():
        name = f"{where}.{key}" if where else key
        if key not in default:
            raise ConfigError(f"Unknown key {_show(name)}{at} (known here: {', '.join(sorted(default))}).")
        base = default[key]
        if isinstance(base, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"Key {name!r}{at} must be a table, not {_show(value)}.")
            # An empty default table is open: its keys are names (checked where it is read).
            out[key] = merge(base, value, name, file) if base else value
        elif base == "model":
            out[key] = value  # threshold keys: "model" or a number (checked where they are read)
        elif isinstance(base, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, int) and _finite(value) is None:
                raise ConfigError(f"Key {name!r}{at} must be a number a float can hold, not {_show(value)}.")
            out[key] = float(value)  # NaN and infinity stay, for the range check that reads the key
        elif type(base) is not type(value):
            expected = _TYPE_NAMES.get(type(base), type(base).__name__)
            raise ConfigError(f"Key {name!r} must be {expected}, not {_show(value)}" + (f",{at}." if at else "."))
        else:
            out[key] = value
    return out


# Checked ranges of the numbers in a config or recipe: nonsense (a negative queue, NaN, a day
# between commits) is refused with the key's name, before anything is opened.
MAX_QUEUE_SIZE = 1000
MAX_COMMIT_BATCH = 100_000
MAX_COMMIT_INTERVAL_S = 60.0  # rows wait at most this long for their commit (lost if the station dies)
MAX_ALARM_COUNT = 100_000  # consecutive_ng, ng_rate_window
MAX_FREE_DISK_MB = 1_000_000_000
MAX_SHIFTS = 24
MAX_EXPOSURE_US = 10_000_000.0  # 10 s, the longest exposure of Basler's cameras
MAX_GAIN_DB = 48.0
MAX_FRAME_RATE = 10_000.0
MAX_SENSOR_PX = 65_535  # a ROI coordinate or side
MAX_AREA_PX = MAX_IMAGE_PIXELS  # the largest image read
MAX_SAVE_OK_EVERY = 1_000_000
MODES = ("latency", "throughput")  # runner.mode
MAX_BATCH = 64  # runner.max_batch
MAX_RECIPE_INDEX = 9999  # a recipe's PLC index


def _finite(value: Any) -> float | None:
    """`value` as a finite float, or None (not a number, NaN, infinite, an int too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        f = float(value)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def _int_in(value: Any, key: str, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{key} in {where} must be a whole number from {lo:,} to {hi:,}, not {_show(value)}.")
    return value


def _float_in(
    value: Any, key: str, where: str, lo: float, hi: float, *, lo_open: bool = False, rule: str = ""
) -> float:
    f = _finite(value)
    if f is None or not (lo < f if lo_open else lo <= f) or not f <= hi:
        rule = rule or (f"a number above {lo:g} and at most {hi:g}" if lo_open else f"a number from {lo:g} to {hi:g}")
        raise ConfigError(f"{key} in {where} must be {rule}, not {_show(value)}.")
    return f


def _choice(value: str, key: str, where: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{key} in {where} must be one of {', '.join(repr(c) for c in choices)}, not {_show(value)}.")
    return value


def _path_text(value: str, key: str, where: str) -> str:
    if "\x00" in value:
        raise ConfigError(f"{key} in {where} must be a path without NUL characters, not {_show(value)}.")
    return value


@dataclasses.dataclass(frozen=True)
class ShiftPattern:
    names: tuple[str, ...]
    starts: tuple[dt.time, ...]
    tz: zoneinfo.ZoneInfo

    def shift_at(self, when: dt.datetime) -> tuple[str, dt.datetime, dt.datetime]:
        """(name, start, end) of the shift `when` falls in; start and end are aware datetimes in UTC."""
        local = when.astimezone(self.tz)
        starts = sorted(
            (dt.datetime.combine(local.date() + dt.timedelta(days=k), t, tzinfo=self.tz), n)
            for k in (-1, 0, 1)
            for n, t in zip(self.names, self.starts)
        )
        for (begin, name), (end, _) in zip(starts, starts[1:]):
            if begin <= local < end:
                return name, begin.astimezone(dt.UTC), end.astimezone(dt.UTC)
        raise AssertionError("shift pattern does not cover the day")  # pragma: no cover


@dataclasses.dataclass(frozen=True)
class AlarmConfig:
    consecutive_ng: int = 5  # 0: off
    ng_rate_limit: float = 0.3  # 0: off
    ng_rate_window: int = 50
    min_free_disk_mb: int = 1024
    dropped_frames: bool = True


@dataclasses.dataclass(frozen=True)
class RetentionConfig:
    """When part images are deleted (oldest first; rows never): see inspection.retention."""

    max_image_mb: int = 0  # the image folder's limit; 0: none
    min_free_mb: int = 2048  # free space kept on the image folder's disk
    keep_rejects_days: int = 30  # NG and REVIEW images younger than this are kept
    check_interval_s: float = 60.0


@dataclasses.dataclass(frozen=True)
class Config:
    line: str
    station: str
    shifts: ShiftPattern
    queue_size: int
    commit_interval_s: float
    commit_batch: int
    alarms: AlarmConfig = AlarmConfig()
    reports_automatic: bool = True
    reports_folder: Path | None = None  # None: reports/ in the user data folder
    retention: RetentionConfig = RetentionConfig()
    auto_logout_min: float = 15.0  # a logged-in user without a key or click this long is logged out; 0: never
    mode: str = "latency"  # "latency": one view at a time; "throughput": micro-batches of waiting views
    max_batch: int = 4  # throughput mode: the most views the network takes at once
    recipes_folder: Path | None = None  # None: recipes/ in the user data folder
    plc: PlcConfig = PlcConfig()
    io: IoConfig = IoConfig()  # the camera's hardware trigger input ([io])
    reject: RejectConfig = RejectConfig()  # the reject output and its deadline ([reject])


def runner_options(config: Config, mode: str | None = None, max_batch: int | None = None) -> Config:
    """`config` with runner.mode and runner.max_batch replaced where given (the command line's options), checked alike."""
    where = "the command line"
    if mode is not None:
        config = dataclasses.replace(config, mode=_choice(mode, "--mode", where, MODES))
    if max_batch is not None:
        config = dataclasses.replace(config, max_batch=_int_in(max_batch, "--max-batch", where, 1, MAX_BATCH))
    return config


def _shift_pattern(names: Any, starts: Any, tz: zoneinfo.ZoneInfo, where: str) -> ShiftPattern:
    if (
        not 1 <= len(names) <= MAX_SHIFTS
        or not all(isinstance(n, str) and n.strip() for n in names)
        or len(set(names)) != len(names)
    ):
        raise ConfigError(f"shifts.names in {where} must be 1 to {MAX_SHIFTS} distinct names, not {_show(names)}.")
    if len(names) != len(starts):
        raise ConfigError(f"Shifts in {where} need as many names as starts, at least one.")
    try:
        times = tuple(dt.time.fromisoformat(s) for s in starts)
    except (TypeError, ValueError):
        times = ()
    if len(times) != len(starts) or any(t.tzinfo is not None for t in times):
        raise ConfigError(
            f'Shift starts in {where} must be times like "06:00" (in the line\'s time zone), not {_show(starts)}.'
        )
    if list(times) != sorted(set(times)):
        raise ConfigError(f"Shift starts in {where} must be distinct and in order through the day.")
    return ShiftPattern(tuple(names), times, tz)


def load_config(path: Path | None = None) -> Config:
    raw = _read_toml(resources.DEFAULT_CONFIG, "default config")
    where = f"config {path}" if path else "default config"
    if path is not None:
        raw = merge(raw, _read_toml(path, "config"), "", where)
    line = raw["line"]
    tz_name = line["timezone"]
    try:
        tz = zoneinfo.ZoneInfo(tz_name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(f"Time zone {_show(tz_name)} in {where} is not a known IANA time zone.") from None
    shifts = _shift_pattern(raw["shifts"]["names"], raw["shifts"]["starts"], tz, where)
    r, a = raw["runner"], raw["alarms"]
    k = raw["retention"]
    return Config(
        line=line["name"],
        station=line["station"],
        shifts=shifts,
        queue_size=_int_in(r["queue_size"], "runner.queue_size", where, 1, MAX_QUEUE_SIZE),
        commit_interval_s=_float_in(
            r["commit_interval_s"],
            "runner.commit_interval_s",
            where,
            0.0,
            MAX_COMMIT_INTERVAL_S,
            lo_open=True,
            rule=f"a time in seconds above 0 and at most {MAX_COMMIT_INTERVAL_S:g}",
        ),
        commit_batch=_int_in(r["commit_batch"], "runner.commit_batch", where, 1, MAX_COMMIT_BATCH),
        mode=_choice(r["mode"], "runner.mode", where, MODES),
        max_batch=_int_in(r["max_batch"], "runner.max_batch", where, 1, MAX_BATCH),
        alarms=AlarmConfig(
            consecutive_ng=_int_in(a["consecutive_ng"], "alarms.consecutive_ng", where, 0, MAX_ALARM_COUNT),
            ng_rate_limit=_float_in(
                a["ng_rate_limit"], "alarms.ng_rate_limit", where, 0.0, 1.0, rule="a share from 0 to 1 (0: off)"
            ),
            ng_rate_window=_int_in(a["ng_rate_window"], "alarms.ng_rate_window", where, 1, MAX_ALARM_COUNT),
            min_free_disk_mb=_int_in(a["min_free_disk_mb"], "alarms.min_free_disk_mb", where, 0, MAX_FREE_DISK_MB),
            dropped_frames=a["dropped_frames"],
        ),
        reports_automatic=raw["reports"]["automatic"],
        reports_folder=(
            (Path(path).parent if path else Path(".")) / _path_text(raw["reports"]["folder"], "reports.folder", where)
            if raw["reports"]["folder"]
            else None
        ),
        retention=RetentionConfig(
            max_image_mb=_int_in(k["max_image_mb"], "retention.max_image_mb", where, 0, MAX_FREE_DISK_MB),
            min_free_mb=_int_in(k["min_free_mb"], "retention.min_free_mb", where, 0, MAX_FREE_DISK_MB),
            keep_rejects_days=_int_in(k["keep_rejects_days"], "retention.keep_rejects_days", where, 0, 100 * 365),
            check_interval_s=_float_in(
                k["check_interval_s"],
                "retention.check_interval_s",
                where,
                1.0,
                86_400.0,
                rule="a time in seconds from 1 to 86400",
            ),
        ),
        recipes_folder=(
            (Path(path).parent if path else Path(".")) / _path_text(raw["recipes"]["folder"], "recipes.folder", where)
            if raw["recipes"]["folder"]
            else None
        ),
        auto_logout_min=_float_in(
            raw["users"]["auto_logout_min"],
            "users.auto_logout_min",
            where,
            0.0,
            24 * 60.0,
            rule="minutes from 0 (never) to 1440",
        ),
        plc=parse_plc(raw["plc"], where),
        io=(io_reject := parse_io_reject(raw["io"], raw["reject"], where))[0],
        reject=io_reject[1],
    )


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    model: Path  # model package
    camera: CameraSettings
    settings_file: Path | None
    ok_below: float | None  # None: the model's
    ng_at: float | None
    min_defect_area_px: int
    save_ok_every: int
    false_reject: float | None = None  # None: the model's calibration
    review_false_reject: float | None = None
    class_limits: dict[str, ClassLimit] = dataclasses.field(default_factory=dict)
    defect_classes: tuple[str, ...] = ()  # what relabels pick from; empty: the model's classes
    index: int = 0  # the number a PLC selects the recipe by (RecipeIndex); 0: not selectable by a PLC
    shifts: ShiftPattern | None = None  # None: the line's
    keep_rejects_days: int | None = None  # retention of NG/REVIEW images; None: the line's
    content: str = ""  # the recipe as merged over the default, canonical JSON (kept with its version)
    sha256: str = ""  # of what the recipe file says and of its settings file's bytes: its version's identity

    def in_force(self, config: Config) -> Config:
        """The line's config with this recipe's shift pattern and image retention where it sets them."""
        out = config
        if self.shifts is not None:  # (its starts are in the line's time zone)
            out = dataclasses.replace(out, shifts=dataclasses.replace(self.shifts, tz=config.shifts.tz))
        if self.keep_rejects_days is not None:
            out = dataclasses.replace(
                out, retention=dataclasses.replace(out.retention, keep_rejects_days=self.keep_rejects_days)
            )
        return out


@dataclasses.dataclass(frozen=True)
class ClassLimit:
    """A defect of this class makes a part NG only if it is at least this large and strong."""

    min_area_px: int = 0
    min_score: float = 0.0


def _rate(value: Any, key: str, where: str) -> float | None:
    if value == "model":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value < 1.0:
        return float(value)
    raise ConfigError(
        f'verdict.{key} in {where} must be a share of good parts between 0 and 1 (e.g. 0.01) or "model", not {_show(value)}.'
    )


def _class_limits(table: Any, where: str) -> dict[str, ClassLimit]:
    out = {}
    for cls, limits in table.items():
        name = f"verdict.classes.{cls}"
        if not isinstance(limits, dict) or not set(limits) <= {"min_area_px", "min_score"}:
            raise ConfigError(
                f"{_show(name)} in {where} must be a table with min_area_px and/or min_score, not {_show(limits)}."
            )
        area = _int_in(limits.get("min_area_px", 0), f"{name}.min_area_px", where, 0, MAX_AREA_PX)
        score = _float_in(
            limits.get("min_score", 0.0), f"{name}.min_score", where, 0.0, math.inf, rule="a finite score, 0 or more"
        )
        out[str(cls)] = ClassLimit(area, score)
    return out


def _threshold(value: Any, key: str, where: str) -> float | None:
    if value == "model":
        return None
    f = _finite(value)
    if f is not None:
        return f
    raise ConfigError(f'verdict.{key} in {where} must be a finite number or "model", not {_show(value)}.')


def _camera(cam: dict[str, Any], where: str) -> CameraSettings:
    roi = cam["roi"]
    if (
        len(roi) != 4
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SENSOR_PX for v in roi)
        or (any(roi) and not (roi[2] and roi[3]))
    ):
        raise ConfigError(
            f"camera.roi in {where} must be four whole numbers x, y, width, height up to {MAX_SENSOR_PX} with width and "
            f"height at least 1 (all 0 for the full sensor), not {_show(roi)}."
        )
    exposure = _float_in(
        cam["exposure_us"],
        "camera.exposure_us",
        where,
        0.0,
        MAX_EXPOSURE_US,
        rule=f"a time in microseconds from 0 to {MAX_EXPOSURE_US:,.0f} (0 leaves the camera's own)",
    )
    gain = _float_in(
        cam["gain_db"],
        "camera.gain_db",
        where,
        -math.inf,
        MAX_GAIN_DB,
        lo_open=True,
        rule=f"a finite number of dB up to {MAX_GAIN_DB:g} (negative leaves the camera's own)",
    )
    rate = _float_in(
        cam["frame_rate"],
        "camera.frame_rate",
        where,
        0.0,
        MAX_FRAME_RATE,
        rule=f"frames per second from 0 to {MAX_FRAME_RATE:,.0f} (0 leaves the camera's own)",
    )
    try:
        return CameraSettings(
            pixel_format=cam["pixel_format"],
            trigger=TriggerMode(cam["trigger"]),
            exposure_us=exposure or None,
            gain_db=gain if gain >= 0 else None,
            frame_rate=rate or None,
            roi=Roi(*roi) if any(roi) else None,
        )
    except ValueError as exc:
        raise ConfigError(f"Camera settings in {where} are not valid: {exc}.") from None


def load_recipe(path: Path | None = None) -> Recipe:
    raw = _read_toml(resources.DEFAULT_RECIPE, "default recipe")
    base = Path(".")
    where = f"recipe {path}" if path else "default recipe"
    own: dict[str, Any] = {}  # what the recipe file itself says (its version is taken of it)
    if path is not None:
        own = _read_toml(path, "recipe")
        raw = merge(raw, own, "", where)
        base = Path(path).parent
    if not raw["name"].strip():
        raise ConfigError(f"name in {where} must not be empty.")
    cam = raw["camera"]
    settings = _camera(cam, where)
    v = raw["verdict"]
    ok_below, ng_at = _threshold(v["ok_below"], "ok_below", where), _threshold(v["ng_at"], "ng_at", where)
    if ok_below is not None and ng_at is not None and ok_below > ng_at:
        raise ConfigError(f"verdict.ok_below ({ok_below}) exceeds verdict.ng_at ({ng_at}) in {where}.")
    false_reject = _rate(v["false_reject"], "false_reject", where)
    review_false_reject = _rate(v["review_false_reject"], "review_false_reject", where)
    if false_reject is not None and review_false_reject is not None and review_false_reject < false_reject:
        raise ConfigError(
            f"verdict.review_false_reject ({review_false_reject}) must not be below verdict.false_reject ({false_reject}) in {where}."
        )
    model, settings_file = (
        _path_text(raw["model"], "model", where),
        _path_text(cam["settings_file"], "camera.settings_file", where),
    )
    shifts = raw["shifts"]
    keep = raw["images"]["keep_rejects_days"]
    settings_path = (base / settings_file) if settings_file else None
    content = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return Recipe(
        name=raw["name"],
        model=(base / model) if model else resources.DEMO_MODEL,
        camera=settings,
        settings_file=settings_path,
        ok_below=ok_below,
        ng_at=ng_at,
        min_defect_area_px=_int_in(v["min_defect_area_px"], "verdict.min_defect_area_px", where, 0, MAX_AREA_PX),
        save_ok_every=_int_in(raw["images"]["save_ok_every"], "images.save_ok_every", where, 0, MAX_SAVE_OK_EVERY),
        false_reject=false_reject,
        review_false_reject=review_false_reject,
        class_limits=_class_limits(v["classes"], where),
        defect_classes=_defect_classes(raw["review"]["classes"], where),
        index=_int_in(raw["index"], "index", where, 0, MAX_RECIPE_INDEX),
        shifts=_shift_pattern(shifts["names"], shifts["starts"], zoneinfo.ZoneInfo("UTC"), where)
        if shifts["names"] or shifts["starts"]
        else None,
        keep_rejects_days=None if keep == -1 else _int_in(keep, "images.keep_rejects_days", where, 0, 100 * 365),
        content=content,
        sha256=_recipe_digest(
            json.dumps(own, sort_keys=True, separators=(",", ":"), default=str), settings_path, where
        ),
    )


def _recipe_digest(content: str, settings_file: Path | None, where: str) -> str:
    """What a recipe's version is taken of: what its file says (not the packaged defaults it is
    merged over: a new release does not make every recipe a new version) and its camera settings
    file's bytes."""
    digest = hashlib.sha256(content.encode())
    if settings_file is not None:
        try:
            digest.update(settings_file.read_bytes())
        except FileNotFoundError:
            raise ConfigError(f"The camera settings file {settings_file} of {where} does not exist.") from None
        except OSError as exc:
            raise ConfigError(
                f"The camera settings file {settings_file} of {where} cannot be read: {exc.strerror or exc}."
            ) from None
    return digest.hexdigest()


def _defect_classes(values: list, where: str) -> tuple[str, ...]:
    if not all(isinstance(c, str) and c.strip() and c.strip() != "good" for c in values) or len(set(values)) != len(
        values
    ):
        raise ConfigError(
            f'review.classes in {where} must be distinct defect class names (not "good"), not {_show(values)}.'
        )
    return tuple(c.strip() for c in values)


def load_recipes(folder: Path) -> list[tuple[Recipe, Path]]:
    """(recipe, path) of each valid recipe file in `folder`, by name; invalid ones are logged and left out."""
    out = []
    for path in sorted(Path(folder).glob("*.toml")) if Path(folder).is_dir() else []:
        try:
            out.append((load_recipe(path), path))
        except ConfigError as exc:
            log.warning("recipe %s left out: %s", path, exc)
    return sorted(out, key=lambda rp: (rp[0].name, rp[1]))


def find_recipes(folder: Path) -> list[tuple[str, Path]]:
    """(name, path) of each valid recipe file in `folder`, by name (see load_recipes)."""
    return [(recipe.name, path) for recipe, path in load_recipes(folder)]


def recipes_dir() -> Path:
    """Where the station's recipes live: `recipes/` in the user data folder."""
    return data_dir() / "recipes"


def data_dir() -> Path:
    """The user data folder (database, images, logs): $LEPTON_DATA_DIR, else the platform's own."""
    env = os.environ.get("LEPTON_DATA_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("lepton-inspect", appauthor=False))


def default_db() -> Path:
    return data_dir() / "lepton.db"
