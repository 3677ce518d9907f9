"""OK / NG / REVIEW from a prediction and the thresholds in force."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from inspection.errors import ConfigError
from inspection.result import Verdict
from inspection.settings.recipe import ClassLimit, Recipe
from models.base import DefectClass, ModelInfo, Prediction, Thresholds
from models.calibration import recalibrate


def thresholds_in_force(recipe: Recipe, model: ModelInfo) -> Thresholds:
    """The thresholds a recipe puts in force for a model: its explicit numbers where it sets them;
    else, where it sets false-reject targets, the model's calibration recomputed for them; else the
    package's own. ConfigError if the recipe limits a class the model does not know."""
    unknown = sorted(set(recipe.class_limits) - set(model.classes))
    if unknown:
        raise ConfigError(
            f"Recipe {recipe.name} sets limits for {', '.join(unknown)}, which model {model.name} does not detect "
            f"(it detects: {', '.join(model.classes)})."
        )
    t = model.thresholds
    if recipe.false_reject is not None or recipe.review_false_reject is not None:
        cal = model.metadata.get("calibration") or {}
        fr = recipe.false_reject if recipe.false_reject is not None else cal.get("false_reject_target", 0.01)
        review = (
            recipe.review_false_reject
            if recipe.review_false_reject is not None
            else cal.get("review_false_reject", 0.05)
        )
        if review < fr:
            raise ConfigError(
                f"verdict.review_false_reject ({review}) must not be below verdict.false_reject ({fr}) "
                f"in recipe {recipe.name}."
            )
        new = recalibrate(model.metadata, false_reject=fr, review_false_reject=review)
        if new is None:
            raise ConfigError(
                f"Model {model.name} keeps no calibration scores, so recipe {recipe.name} cannot set a false-reject "
                "target; set verdict.ng_at and verdict.ok_below instead."
            )
        t = dataclasses.replace(t, ok_below=new["ok_below"], ng_at=new["ng_at"])
    ok_below = recipe.ok_below if recipe.ok_below is not None else t.ok_below
    ng_at = recipe.ng_at if recipe.ng_at is not None else t.ng_at
    if ok_below > ng_at:
        raise ConfigError(
            f"Recipe {recipe.name} puts ok_below ({ok_below:.4g}) above ng_at ({ng_at:.4g}) for model {model.name}."
        )
    return dataclasses.replace(t, ok_below=ok_below, ng_at=ng_at)


def decide(
    prediction: Prediction,
    thresholds: Thresholds,
    min_defect_area_px: int = 0,
    class_limits: Mapping[str, ClassLimit] | None = None,
) -> Verdict:
    """Below ok_below: OK. At or above ng_at: NG if the defects found reach the minimum area and
    (where the model names classes) one of them passes its class's area and score limits.
    Everything else - and any score that is not a number - is REVIEW, for a person to decide."""
    score = prediction.score
    if math.isnan(score):
        return Verdict.REVIEW
    if score < thresholds.ok_below:
        return Verdict.OK
    if score < thresholds.ng_at:
        return Verdict.REVIEW
    if sum(c.area_px for c in prediction.classes) < min_defect_area_px:
        return Verdict.REVIEW
    if (
        class_limits
        and prediction.classes
        and not any(_passes(c, class_limits.get(c.name)) for c in prediction.classes)
    ):
        return Verdict.REVIEW
    return Verdict.NG


def _passes(defect: DefectClass, limit: ClassLimit | None) -> bool:
    return limit is None or (defect.area_px >= limit.min_area_px and defect.score >= limit.min_score)
