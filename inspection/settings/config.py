"""Station config and recipes: TOML files merged over the packaged defaults, unknown keys rejected."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import logging
import os
import zoneinfo
from pathlib import Path
from typing import Any, TypedDict

import resources
from inspection.errors import ConfigError
from inspection.settings.io import IoConfig, RejectConfig, parse_io_reject
from inspection.settings.parse import (
    MAX_ALARM_COUNT,
    MAX_BATCH,
    MAX_COMMIT_BATCH,
    MAX_COMMIT_INTERVAL_S,
    MAX_FREE_DISK_MB,
    MAX_QUEUE_SIZE,
    MAX_SHIFTS,
    MODES,
    choice,
    float_in,
    int_in,
    merge,
    path_text,
    read_toml,
    show,
)
from inspection.settings.plc import PlcConfig, parse_plc

log = logging.getLogger(__name__)


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
            for n, t in zip(self.names, self.starts, strict=True)
        )
        for (begin, name), (end, _) in itertools.pairwise(starts):
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
    """`config` with runner.mode and runner.max_batch replaced where given (the command line's options),
    checked alike."""
    where = "the command line"
    if mode is not None:
        config = dataclasses.replace(config, mode=choice(mode, "--mode", where, MODES))
    if max_batch is not None:
        config = dataclasses.replace(config, max_batch=int_in(max_batch, "--max-batch", where, 1, MAX_BATCH))
    return config


def shift_pattern(names: Any, starts: Any, tz: zoneinfo.ZoneInfo, where: str) -> ShiftPattern:
    if (
        not 1 <= len(names) <= MAX_SHIFTS
        or not all(isinstance(n, str) and n.strip() for n in names)
        or len(set(names)) != len(names)
    ):
        raise ConfigError(f"shifts.names in {where} must be 1 to {MAX_SHIFTS} distinct names, not {show(names)}.")
    if len(names) != len(starts):
        raise ConfigError(f"Shifts in {where} need as many names as starts, at least one.")
    try:
        times = tuple(dt.time.fromisoformat(s) for s in starts)
    except (TypeError, ValueError):
        times = ()
    if len(times) != len(starts) or any(t.tzinfo is not None for t in times):
        raise ConfigError(
            f'Shift starts in {where} must be times like "06:00" (in the line\'s time zone), not {show(starts)}.'
        )
    if list(times) != sorted(set(times)):
        raise ConfigError(f"Shift starts in {where} must be distinct and in order through the day.")
    return ShiftPattern(tuple(names), times, tz)


def load_config(path: Path | None = None) -> Config:
    """The station config: the packaged default with the file at `path` (if any) merged over it, every value checked."""
    raw = read_toml(resources.DEFAULT_CONFIG, "default config")
    where = f"config {path}" if path else "default config"
    if path is not None:
        raw = merge(raw, read_toml(path, "config"), "", where)
    line = raw["line"]
    tz = _time_zone(line["timezone"], where)
    here = Path(path).parent if path else Path(".")  # (relative folders are the config file's)
    return Config(
        line=line["name"],
        station=line["station"],
        shifts=shift_pattern(raw["shifts"]["names"], raw["shifts"]["starts"], tz, where),
        **_runner(raw["runner"], where),
        alarms=_alarms(raw["alarms"], where),
        reports_automatic=raw["reports"]["automatic"],
        reports_folder=_folder(raw["reports"]["folder"], "reports.folder", here, where),
        retention=_retention(raw["retention"], where),
        recipes_folder=_folder(raw["recipes"]["folder"], "recipes.folder", here, where),
        auto_logout_min=float_in(
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


def _time_zone(name: Any, where: str) -> zoneinfo.ZoneInfo:
    """line.timezone: an IANA time zone."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(f"Time zone {show(name)} in {where} is not a known IANA time zone.") from None


class _RunnerFields(TypedDict):
    """The Config fields that [runner] sets."""

    queue_size: int
    commit_interval_s: float
    commit_batch: int
    mode: str
    max_batch: int


def _runner(r: dict[str, Any], where: str) -> _RunnerFields:
    """[runner]: the queue, the commits, the mode and the micro-batch."""
    return {
        "queue_size": int_in(r["queue_size"], "runner.queue_size", where, 1, MAX_QUEUE_SIZE),
        "commit_interval_s": float_in(
            r["commit_interval_s"],
            "runner.commit_interval_s",
            where,
            0.0,
            MAX_COMMIT_INTERVAL_S,
            lo_open=True,
            rule=f"a time in seconds above 0 and at most {MAX_COMMIT_INTERVAL_S:g}",
        ),
        "commit_batch": int_in(r["commit_batch"], "runner.commit_batch", where, 1, MAX_COMMIT_BATCH),
        "mode": choice(r["mode"], "runner.mode", where, MODES),
        "max_batch": int_in(r["max_batch"], "runner.max_batch", where, 1, MAX_BATCH),
    }


def _alarms(a: dict[str, Any], where: str) -> AlarmConfig:
    """[alarms]."""
    return AlarmConfig(
        consecutive_ng=int_in(a["consecutive_ng"], "alarms.consecutive_ng", where, 0, MAX_ALARM_COUNT),
        ng_rate_limit=float_in(
            a["ng_rate_limit"], "alarms.ng_rate_limit", where, 0.0, 1.0, rule="a share from 0 to 1 (0: off)"
        ),
        ng_rate_window=int_in(a["ng_rate_window"], "alarms.ng_rate_window", where, 1, MAX_ALARM_COUNT),
        min_free_disk_mb=int_in(a["min_free_disk_mb"], "alarms.min_free_disk_mb", where, 0, MAX_FREE_DISK_MB),
        dropped_frames=a["dropped_frames"],
    )


def _retention(k: dict[str, Any], where: str) -> RetentionConfig:
    """[retention]."""
    return RetentionConfig(
        max_image_mb=int_in(k["max_image_mb"], "retention.max_image_mb", where, 0, MAX_FREE_DISK_MB),
        min_free_mb=int_in(k["min_free_mb"], "retention.min_free_mb", where, 0, MAX_FREE_DISK_MB),
        keep_rejects_days=int_in(k["keep_rejects_days"], "retention.keep_rejects_days", where, 0, 100 * 365),
        check_interval_s=float_in(
            k["check_interval_s"],
            "retention.check_interval_s",
            where,
            1.0,
            86_400.0,
            rule="a time in seconds from 1 to 86400",
        ),
    )


def _folder(value: str, key: str, here: Path, where: str) -> Path | None:
    """A folder key: relative to the config file's folder; None when empty (the user data folder's)."""
    return here / path_text(value, key, where) if value else None


def data_dir() -> Path:
    """The user data folder (database, images, logs): $LEPTON_DATA_DIR, else the platform's own."""
    env = os.environ.get("LEPTON_DATA_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("lepton-inspect", appauthor=False))


def default_db() -> Path:
    return data_dir() / "lepton.db"
