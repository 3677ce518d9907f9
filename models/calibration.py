"""Operating thresholds from good parts that were not trained on. Training calibrates a package;
a recipe with its own false-reject target recalibrates from the good-part scores the package keeps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from models.metrics import threshold_at_false_reject


def calibrate(
    good_scores: Sequence[float], *, false_reject: float = 0.01, review_false_reject: float = 0.05
) -> dict[str, float]:
    """NG at the threshold that rejects `false_reject` of these good parts; OK below the one that
    would reject `review_false_reject`; between the two is REVIEW. The pixel threshold for the
    defect mask is the OK threshold, so a REVIEW part shows where it is unsure."""
    ng_at = threshold_at_false_reject(good_scores, false_reject)
    ok_below = min(threshold_at_false_reject(good_scores, review_false_reject), ng_at)
    return {"ok_below": ok_below, "ng_at": ng_at, "pixel": ok_below}


def recalibrate(meta: dict[str, Any], *, false_reject: float, review_false_reject: float) -> dict[str, float] | None:
    """Thresholds for other target rates from the calibration scores stored in a package's
    metadata; None when the package keeps none."""
    good = (meta.get("calibration") or {}).get("good_scores")
    if not good:
        return None
    return calibrate(good, false_reject=false_reject, review_false_reject=review_false_reject)
