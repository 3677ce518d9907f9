"""A recipe: how one product is inspected (camera settings, model, thresholds, image saving, its PLC index), read
from TOML merged over the packaged default."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import zoneinfo
from pathlib import Path
from typing import Any

import resources
from camera.base import CameraSettings, Roi, TriggerMode
from inspection.errors import ConfigError
from inspection.settings.config import Config, ShiftPattern, shift_pattern
from inspection.settings.parse import (
    MAX_AREA_PX,
    MAX_EXPOSURE_US,
    MAX_FRAME_RATE,
    MAX_GAIN_DB,
    MAX_RECIPE_INDEX,
    MAX_SAVE_OK_EVERY,
    MAX_SENSOR_PX,
    finite,
    float_in,
    int_in,
    merge,
    path_text,
    read_toml,
    show,
)

log = logging.getLogger(__name__)


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
        f"verdict.{key} in {where} must be a share of good parts between 0 and 1 (e.g. 0.01) or "
        f'"model", not {show(value)}.'
    )


def _class_limits(table: Any, where: str) -> dict[str, ClassLimit]:
    out = {}
    for cls, limits in table.items():
        name = f"verdict.classes.{cls}"
        if not isinstance(limits, dict) or not set(limits) <= {"min_area_px", "min_score"}:
            raise ConfigError(
                f"{show(name)} in {where} must be a table with min_area_px and/or min_score, not {show(limits)}."
            )
        area = int_in(limits.get("min_area_px", 0), f"{name}.min_area_px", where, 0, MAX_AREA_PX)
        score = float_in(
            limits.get("min_score", 0.0), f"{name}.min_score", where, 0.0, math.inf, rule="a finite score, 0 or more"
        )
        out[str(cls)] = ClassLimit(area, score)
    return out


def _threshold(value: Any, key: str, where: str) -> float | None:
    if value == "model":
        return None
    f = finite(value)
    if f is not None:
        return f
    raise ConfigError(f'verdict.{key} in {where} must be a finite number or "model", not {show(value)}.')


def _camera(cam: dict[str, Any], where: str) -> CameraSettings:
    roi = cam["roi"]
    if (
        len(roi) != 4
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SENSOR_PX for v in roi)
        or (any(roi) and not (roi[2] and roi[3]))
    ):
        raise ConfigError(
            f"camera.roi in {where} must be four whole numbers x, y, width, height up to {MAX_SENSOR_PX} with "
            f"width and height at least 1 (all 0 for the full sensor), not {show(roi)}."
        )
    exposure = float_in(
        cam["exposure_us"],
        "camera.exposure_us",
        where,
        0.0,
        MAX_EXPOSURE_US,
        rule=f"a time in microseconds from 0 to {MAX_EXPOSURE_US:,.0f} (0 leaves the camera's own)",
    )
    gain = float_in(
        cam["gain_db"],
        "camera.gain_db",
        where,
        -math.inf,
        MAX_GAIN_DB,
        lo_open=True,
        rule=f"a finite number of dB up to {MAX_GAIN_DB:g} (negative leaves the camera's own)",
    )
    rate = float_in(
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
    raw = read_toml(resources.DEFAULT_RECIPE, "default recipe")
    base = Path(".")
    where = f"recipe {path}" if path else "default recipe"
    own: dict[str, Any] = {}  # what the recipe file itself says (its version is taken of it)
    if path is not None:
        own = read_toml(path, "recipe")
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
            f"verdict.review_false_reject ({review_false_reject}) must not be below verdict.false_reject "
            f"({false_reject}) in {where}."
        )
    model, settings_file = (
        path_text(raw["model"], "model", where),
        path_text(cam["settings_file"], "camera.settings_file", where),
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
        min_defect_area_px=int_in(v["min_defect_area_px"], "verdict.min_defect_area_px", where, 0, MAX_AREA_PX),
        save_ok_every=int_in(raw["images"]["save_ok_every"], "images.save_ok_every", where, 0, MAX_SAVE_OK_EVERY),
        false_reject=false_reject,
        review_false_reject=review_false_reject,
        class_limits=_class_limits(v["classes"], where),
        defect_classes=_defect_classes(raw["review"]["classes"], where),
        index=int_in(raw["index"], "index", where, 0, MAX_RECIPE_INDEX),
        shifts=shift_pattern(shifts["names"], shifts["starts"], zoneinfo.ZoneInfo("UTC"), where)
        if shifts["names"] or shifts["starts"]
        else None,
        keep_rejects_days=None if keep == -1 else int_in(keep, "images.keep_rejects_days", where, 0, 100 * 365),
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


def _defect_classes(values: list[Any], where: str) -> tuple[str, ...]:
    if not all(isinstance(c, str) and c.strip() and c.strip() != "good" for c in values) or len(set(values)) != len(
        values
    ):
        raise ConfigError(
            f'review.classes in {where} must be distinct defect class names (not "good"), not {show(values)}.'
        )
    return tuple(c.strip() for c in values)
