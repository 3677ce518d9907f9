"""Where the package's own thresholds send the parts: passed, to REVIEW and rejected, apart."""

from __future__ import annotations

import math

import numpy as np

from models.evaluation import verdict_shares


def test_verdict_shares_split_escapes_into_passed_and_reviewed():
    y = np.array([True, True, True, True, False, False, False, False, False])
    x = np.array([0.1, 0.5, 0.6, 0.9, 0.1, 0.2, 0.3, 0.55, 0.95])
    s = verdict_shares(y, x, ok_below=0.4, ng_at=0.8)
    assert s == {"defects_passed_ok": 0.25, "defects_to_review": 0.5, "good_ng": 0.2, "good_review": 0.2}


def test_verdict_shares_without_defects_say_nan_for_them():
    s = verdict_shares(np.array([False, False]), np.array([0.1, 0.9]), ok_below=0.4, ng_at=0.8)
    assert math.isnan(s["defects_passed_ok"]) and s["good_ng"] == 0.5
