"""Where the package's own thresholds send the parts: passed, to REVIEW and rejected, apart."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.evaluation import verdict_shares


def test_verdict_shares_split_escapes_into_passed_and_reviewed():
    y = np.array([True, True, True, True, False, False, False, False, False])
    x = np.array([0.1, 0.5, 0.6, 0.9, 0.1, 0.2, 0.3, 0.55, 0.95])
    s = verdict_shares(y, x, ok_below=0.4, ng_at=0.8)
    assert s == {"defects_passed_ok": 0.25, "defects_to_review": 0.5, "good_ng": 0.2, "good_review": 0.2}


def test_verdict_shares_without_defects_say_nan_for_them():
    s = verdict_shares(np.array([False, False]), np.array([0.1, 0.9]), ok_below=0.4, ng_at=0.8)
    assert math.isnan(s["defects_passed_ok"]) and s["good_ng"] == 0.5


def test_the_false_reject_interval_says_what_a_few_calibration_parts_can_promise():
    from models.calibration import calibrate, false_reject_interval, rate_interval

    lo, hi = rate_interval(0, 80)
    assert lo == 0.0 and hi == pytest.approx(0.0458, abs=1e-3)  # no reject in 80 still allows 4.6 %
    lo, hi = rate_interval(10, 1000)
    assert lo < 0.01 < hi and hi - lo < 0.02  # a thousand parts pin 1 % down
    assert rate_interval(0, 0) == (0.0, 1.0)
    scores = [i / 100 for i in range(100)]
    t = calibrate(scores, false_reject=0.05)
    fr = false_reject_interval(scores, t["ng_at"])
    assert fr["of"] == 100 and fr["rejected"] == sum(v >= t["ng_at"] for v in scores)
    assert fr["interval_95"][0] <= fr["rejected"] / 100 <= fr["interval_95"][1]
