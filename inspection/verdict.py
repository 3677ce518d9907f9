"""OK / NG / REVIEW from a prediction and the thresholds in force."""

from __future__ import annotations

import dataclasses
import math

from models.base import ModelInfo, Prediction, Thresholds
from inspection.config import Recipe
from inspection.result import Verdict


def thresholds_in_force(recipe: Recipe, model: ModelInfo) -> Thresholds:
    """The recipe's thresholds where it sets them, the model package's calibrated ones elsewhere."""
    t = model.thresholds
    return dataclasses.replace(
        t,
        ok_below=recipe.ok_below if recipe.ok_below is not None else t.ok_below,
        ng_at=recipe.ng_at if recipe.ng_at is not None else t.ng_at,
    )


def decide(prediction: Prediction, thresholds: Thresholds, min_defect_area_px: int = 0) -> Verdict:
    """Below ok_below: OK. At or above ng_at with a defect of at least the minimum area: NG.
    Everything between - and any score that is not a number - is REVIEW, for a person to decide."""
    score = prediction.score
    if math.isnan(score):
        return Verdict.REVIEW
    if score < thresholds.ok_below:
        return Verdict.OK
    if score >= thresholds.ng_at:
        area = sum(c.area_px for c in prediction.classes)
        return Verdict.NG if area >= min_defect_area_px else Verdict.REVIEW
    return Verdict.REVIEW
