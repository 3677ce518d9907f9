from __future__ import annotations

import numpy as np
import pytest

from inspection.config import load_recipe
from inspection.result import Verdict
from inspection.verdict import decide, thresholds_in_force
from models.base import DefectClass, Prediction, Thresholds

T = Thresholds(ok_below=1.0, ng_at=2.0, pixel=1.0)


def pred(score, area=10):
    z = np.zeros((4, 4), dtype=np.float32)
    return Prediction(score, z, z > 0, (DefectClass("d", area, score),) if area else ())


@pytest.mark.parametrize("score, verdict", [(0.5, Verdict.OK), (1.0, Verdict.REVIEW), (1.9, Verdict.REVIEW),
                                            (2.0, Verdict.NG), (5.0, Verdict.NG), (float("nan"), Verdict.REVIEW)])
def test_bands(score, verdict):
    assert decide(pred(score), T) is verdict


def test_small_defect_is_review_not_ng():
    assert decide(pred(3.0, area=5), T, min_defect_area_px=6) is Verdict.REVIEW
    assert decide(pred(3.0, area=6), T, min_defect_area_px=6) is Verdict.NG


def test_recipe_thresholds_override_the_model(demo_inspector, tmp_path):
    p = tmp_path / "r.toml"
    p.write_text("[verdict]\nng_at = 99.5\n")
    t = thresholds_in_force(load_recipe(p), demo_inspector.info)
    assert t.ng_at == 99.5 and t.ok_below == demo_inspector.info.thresholds.ok_below
