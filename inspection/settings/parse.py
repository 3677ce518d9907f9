"""The parsers every settings file shares: TOML read, merged over a default, values checked; each refusal is one
sentence."""

from __future__ import annotations

import logging
import math
import tomllib
from pathlib import Path
from typing import Any

from inspection.errors import ConfigError
from models.base import MAX_IMAGE_PIXELS

log = logging.getLogger(__name__)

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


def read_toml(path: Path, what: str) -> dict[str, Any]:
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


def show(value: Any, limit: int = 60) -> str:
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
            raise ConfigError(f"Unknown key {show(name)}{at} (known here: {', '.join(sorted(default))}).")
        base = default[key]
        if isinstance(base, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"Key {name!r}{at} must be a table, not {show(value)}.")
            # An empty default table is open: its keys are names (checked where it is read).
            out[key] = merge(base, value, name, file) if base else value
        elif base == "model":
            out[key] = value  # threshold keys: "model" or a number (checked where they are read)
        elif isinstance(base, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, int) and finite(value) is None:
                raise ConfigError(f"Key {name!r}{at} must be a number a float can hold, not {show(value)}.")
            out[key] = float(value)  # NaN and infinity stay, for the range check that reads the key
        elif type(base) is not type(value):
            expected = _TYPE_NAMES.get(type(base), type(base).__name__)
            raise ConfigError(f"Key {name!r} must be {expected}, not {show(value)}" + (f",{at}." if at else "."))
        else:
            out[key] = value
    return out


def finite(value: Any) -> float | None:
    """`value` as a finite float, or None (not a number, NaN, infinite, an int too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        f = float(value)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def int_in(value: Any, key: str, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{key} in {where} must be a whole number from {lo:,} to {hi:,}, not {show(value)}.")
    return value


def float_in(value: Any, key: str, where: str, lo: float, hi: float, *, lo_open: bool = False, rule: str = "") -> float:
    f = finite(value)
    if f is None or not (lo < f if lo_open else lo <= f) or not f <= hi:
        rule = rule or (f"a number above {lo:g} and at most {hi:g}" if lo_open else f"a number from {lo:g} to {hi:g}")
        raise ConfigError(f"{key} in {where} must be {rule}, not {show(value)}.")
    return f


def choice(value: str, key: str, where: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{key} in {where} must be one of {', '.join(repr(c) for c in choices)}, not {show(value)}.")
    return value


def path_text(value: str, key: str, where: str) -> str:
    if "\x00" in value:
        raise ConfigError(f"{key} in {where} must be a path without NUL characters, not {show(value)}.")
    return value
