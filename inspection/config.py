"""Station config and recipes: TOML files merged over the packaged defaults, unknown keys rejected."""

from __future__ import annotations

import dataclasses
import logging
import os
import datetime as dt
import tomllib
import zoneinfo
from pathlib import Path
from typing import Any

import resources
from camera.base import CameraSettings, Roi, TriggerMode
from inspection.errors import ConfigError

log = logging.getLogger(__name__)


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        with Path(path).open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"The {what} file {path} does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"The {what} file {path} is not valid TOML: {exc}.") from None
    except OSError as exc:
        raise ConfigError(f"The {what} file {path} cannot be read: {exc.strerror}.") from None


def merge(default: dict[str, Any], user: dict[str, Any], where: str) -> dict[str, Any]:
    """`user` over `default`; a key or a type that the default does not have is an error."""
    out = dict(default)
    for key, value in user.items():
        name = f"{where}.{key}" if where else key
        if key not in default:
            raise ConfigError(f"Unknown key {name!r} (known here: {', '.join(sorted(default))}).")
        base = default[key]
        if isinstance(base, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"Key {name!r} must be a table.")
            # An empty default table is open: its keys are names (checked where it is read).
            out[key] = merge(base, value, name) if base else value
        elif isinstance(base, bool) or isinstance(value, bool):
            if type(base) is not type(value):
                raise ConfigError(f"Key {name!r} must be {type(base).__name__}, not {value!r}.")
            out[key] = value
        elif isinstance(base, (int, float)) and isinstance(value, (int, float)):
            out[key] = type(base)(value) if isinstance(base, float) else value
        elif base == "model" and isinstance(value, (str, int, float)):
            out[key] = value  # threshold keys: "model" or a number
        elif type(base) is not type(value):
            raise ConfigError(f"Key {name!r} must be {type(base).__name__}, not {value!r}.")
        else:
            out[key] = value
    return out


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
                return name, begin.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)
        raise AssertionError("shift pattern does not cover the day")  # pragma: no cover


@dataclasses.dataclass(frozen=True)
class AlarmConfig:
    consecutive_ng: int = 5  # 0: off
    ng_rate_limit: float = 0.3  # 0: off
    ng_rate_window: int = 50
    min_free_disk_mb: int = 1024
    dropped_frames: bool = True


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


def load_config(path: Path | None = None) -> Config:
    raw = _read_toml(resources.DEFAULT_CONFIG, "default config")
    if path is not None:
        raw = merge(raw, _read_toml(path, "config"), "")
    where = f"config {path}" if path else "default config"
    try:
        tz = zoneinfo.ZoneInfo(raw["line"]["timezone"])
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"Time zone {raw['line']['timezone']!r} in {where} is not a known IANA time zone.") from None
    names, starts = raw["shifts"]["names"], raw["shifts"]["starts"]
    if not names or len(names) != len(starts):
        raise ConfigError(f"Shifts in {where} need as many names as starts, at least one.")
    try:
        times = tuple(dt.time.fromisoformat(s) for s in starts)
    except (TypeError, ValueError):
        raise ConfigError(f"Shift starts in {where} must be times like \"06:00\", not {starts}.") from None
    if list(times) != sorted(set(times)):
        raise ConfigError(f"Shift starts in {where} must be distinct and in order through the day.")
    r = raw["runner"]
    if r["queue_size"] < 1 or r["commit_batch"] < 1 or r["commit_interval_s"] <= 0:
        raise ConfigError(f"Runner queue_size, commit_batch and commit_interval_s in {where} must be positive.")
    a = raw["alarms"]
    if a["consecutive_ng"] < 0 or a["ng_rate_window"] < 1 or not 0 <= a["ng_rate_limit"] <= 1 or a["min_free_disk_mb"] < 0:
        raise ConfigError(f"Alarms in {where}: consecutive_ng and min_free_disk_mb must not be negative, ng_rate_window "
                          "must be at least 1 and ng_rate_limit a share between 0 and 1.")
    return Config(
        line=raw["line"]["name"],
        station=raw["line"]["station"],
        shifts=ShiftPattern(tuple(names), times, tz),
        queue_size=int(r["queue_size"]),
        commit_interval_s=float(r["commit_interval_s"]),
        commit_batch=int(r["commit_batch"]),
        alarms=AlarmConfig(int(a["consecutive_ng"]), float(a["ng_rate_limit"]), int(a["ng_rate_window"]),
                           int(a["min_free_disk_mb"]), bool(a["dropped_frames"])),
        reports_automatic=bool(raw["reports"]["automatic"]),
        reports_folder=(Path(path).parent if path else Path(".")) / raw["reports"]["folder"] if raw["reports"]["folder"] else None,
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
    raise ConfigError(f"verdict.{key} in {where} must be a share of good parts between 0 and 1 (e.g. 0.01) or \"model\", not {value!r}.")


def _class_limits(table: Any, where: str) -> dict[str, ClassLimit]:
    out = {}
    for cls, limits in table.items():
        if not isinstance(limits, dict) or not set(limits) <= {"min_area_px", "min_score"}:
            raise ConfigError(f"verdict.classes.{cls} in {where} must be a table with min_area_px and/or min_score.")
        area, score = limits.get("min_area_px", 0), limits.get("min_score", 0.0)
        if isinstance(area, bool) or not isinstance(area, int) or area < 0:
            raise ConfigError(f"verdict.classes.{cls}.min_area_px in {where} must be a whole number of pixels, 0 or more.")
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise ConfigError(f"verdict.classes.{cls}.min_score in {where} must be a number.")
        out[str(cls)] = ClassLimit(area, float(score))
    return out


def _threshold(value: Any, key: str, where: str) -> float | None:
    if value == "model":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ConfigError(f"verdict.{key} in {where} must be a number or \"model\", not {value!r}.")


def load_recipe(path: Path | None = None) -> Recipe:
    raw = _read_toml(resources.DEFAULT_RECIPE, "default recipe")
    base = Path(".")
    if path is not None:
        raw = merge(raw, _read_toml(path, "recipe"), "")
        base = Path(path).parent
    where = f"recipe {path}" if path else "default recipe"
    cam = raw["camera"]
    roi_values = cam["roi"]
    if len(roi_values) != 4 or not all(isinstance(v, int) and v >= 0 for v in roi_values):
        raise ConfigError(f"camera.roi in {where} must be four whole numbers x, y, width, height (all 0 for the full sensor).")
    try:
        settings = CameraSettings(
            pixel_format=cam["pixel_format"],
            trigger=TriggerMode(cam["trigger"]),
            exposure_us=cam["exposure_us"] or None,
            gain_db=cam["gain_db"] if cam["gain_db"] >= 0 else None,
            frame_rate=cam["frame_rate"] or None,
            roi=Roi(*roi_values) if any(roi_values) else None,
        )
    except ValueError as exc:
        raise ConfigError(f"Camera settings in {where} are not valid: {exc}.") from None
    v = raw["verdict"]
    ok_below, ng_at = _threshold(v["ok_below"], "ok_below", where), _threshold(v["ng_at"], "ng_at", where)
    if ok_below is not None and ng_at is not None and ok_below > ng_at:
        raise ConfigError(f"verdict.ok_below ({ok_below}) exceeds verdict.ng_at ({ng_at}) in {where}.")
    if v["min_defect_area_px"] < 0 or raw["images"]["save_ok_every"] < 0:
        raise ConfigError(f"min_defect_area_px and save_ok_every in {where} must not be negative.")
    return Recipe(
        name=raw["name"],
        model=(base / raw["model"]) if raw["model"] else resources.DEMO_MODEL,
        camera=settings,
        settings_file=(base / cam["settings_file"]) if cam["settings_file"] else None,
        ok_below=ok_below,
        ng_at=ng_at,
        min_defect_area_px=int(v["min_defect_area_px"]),
        save_ok_every=int(raw["images"]["save_ok_every"]),
        false_reject=_rate(v["false_reject"], "false_reject", where),
        review_false_reject=_rate(v["review_false_reject"], "review_false_reject", where),
        class_limits=_class_limits(v["classes"], where),
        defect_classes=_defect_classes(raw["review"]["classes"], where),
    )


def _defect_classes(values: list, where: str) -> tuple[str, ...]:
    if not all(isinstance(c, str) and c.strip() and c.strip() != "good" for c in values) or len(set(values)) != len(values):
        raise ConfigError(f"review.classes in {where} must be distinct defect class names (not \"good\"), not {values!r}.")
    return tuple(c.strip() for c in values)


def find_recipes(folder: Path) -> list[tuple[str, Path]]:
    """(name, path) of each valid recipe file in `folder`, by name; invalid ones are logged and left out."""
    out = []
    for path in sorted(Path(folder).glob("*.toml")) if Path(folder).is_dir() else []:
        try:
            out.append((load_recipe(path).name, path))
        except ConfigError as exc:
            log.warning("recipe %s left out: %s", path, exc)
    return sorted(out)


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
