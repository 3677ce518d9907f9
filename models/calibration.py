"""Operating thresholds from good parts that were not trained on. Training calibrates a package;
a recipe with its own false-reject target recalibrates from the good-part scores the package keeps."""

from __future__ import annotations

import math
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


def rate_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95 % with the default `z`) of a rate seen `k` times in `n`
    trials; (0, 1) when there were none. On a few dozen calibration parts it is wide: no rejects
    among 80 good parts still allows up to 4.6 %."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def false_reject_interval(good_scores: Sequence[float], ng_at: float) -> dict[str, Any]:
    """How many of the calibration parts the NG threshold rejects, and the 95 % interval of the
    false-reject rate that this count allows: what the calibration can promise, not only its target."""
    k = sum(1 for v in good_scores if v >= ng_at)
    lo, hi = rate_interval(k, len(good_scores))
    return {"rejected": k, "of": len(good_scores), "interval_95": [round(lo, 4), round(hi, 4)]}
