from __future__ import annotations

import numpy as np
import pytest

from inspection.errors import ConfigError
from inspection.result import Verdict
from inspection.runtime.verdict import decide, thresholds_in_force
from inspection.settings.recipe import ClassLimit, load_recipe
from models.base import DefectClass, Prediction, Thresholds

T = Thresholds(ok_below=1.0, ng_at=2.0, pixel=1.0)


def pred(score, area=10):
    z = np.zeros((4, 4), dtype=np.float32)
    return Prediction(score, z, z > 0, (DefectClass("d", area, score),) if area else ())


@pytest.mark.parametrize(
    "score, verdict",
    [
        (0.5, Verdict.OK),
        (1.0, Verdict.REVIEW),
        (1.9, Verdict.REVIEW),
        (2.0, Verdict.NG),
        (5.0, Verdict.NG),
        (float("nan"), Verdict.REVIEW),
    ],
)
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


def classes_pred(score, *classes):
    z = np.zeros((4, 4), dtype=np.float32)
    return Prediction(score, z, z > 0, tuple(DefectClass(n, a, s) for n, a, s in classes))


def test_class_limits_turn_weak_defects_into_review():
    limits = {"Blowhole": ClassLimit(min_area_px=40, min_score=0.6)}
    assert decide(classes_pred(3.0, ("Blowhole", 39, 0.9)), T, class_limits=limits) is Verdict.REVIEW
    assert decide(classes_pred(3.0, ("Blowhole", 40, 0.5)), T, class_limits=limits) is Verdict.REVIEW
    assert decide(classes_pred(3.0, ("Blowhole", 40, 0.6)), T, class_limits=limits) is Verdict.NG
    # a class without limits passes; one passing defect is enough
    assert decide(classes_pred(3.0, ("Blowhole", 5, 0.1), ("Crack", 2, 0.1)), T, class_limits=limits) is Verdict.NG
    # limits never make an OK or REVIEW score worse
    assert decide(classes_pred(0.5, ("Blowhole", 99, 0.9)), T, class_limits=limits) is Verdict.OK


def test_recipe_reads_class_limits_and_rejects_bad_ones(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text("[verdict.classes.Blowhole]\nmin_area_px = 40\nmin_score = 0.6\n")
    assert load_recipe(p).class_limits == {"Blowhole": ClassLimit(40, 0.6)}
    for bad in (
        "[verdict.classes.Blowhole]\nmin_area = 4\n",
        "[verdict.classes.Blowhole]\nmin_area_px = -1\n",
        "[verdict.classes]\nBlowhole = 3\n",
        "[verdict]\nfalse_reject = 1.5\n",
    ):
        p.write_text(bad)
        with pytest.raises(ConfigError):
            load_recipe(p)


def test_recipe_limits_for_a_class_the_model_lacks_are_an_error(demo_inspector, tmp_path):
    p = tmp_path / "r.toml"
    p.write_text("[verdict.classes.Nonexistent]\nmin_area_px = 4\n")
    with pytest.raises(ConfigError, match="Nonexistent"):
        thresholds_in_force(load_recipe(p), demo_inspector.info)


def test_recipe_false_reject_target_recalibrates_from_the_package(demo_inspector, tmp_path):
    """A recipe asking for 10 % false rejects gets the threshold that rejects 10 % of the package's
    own calibration goods - counted independently here."""
    good = np.asarray(demo_inspector.info.metadata["calibration"]["good_scores"])
    p = tmp_path / "r.toml"
    p.write_text("[verdict]\nfalse_reject = 0.10\nreview_false_reject = 0.20\n")
    t = thresholds_in_force(load_recipe(p), demo_inspector.info)
    assert abs((good >= t.ng_at).mean() - 0.10) <= 1.0 / len(good)
    assert abs((good >= t.ok_below).mean() - 0.20) <= 1.0 / len(good)
    assert t.ng_at < demo_inspector.info.thresholds.ng_at  # 10 % rejects more than the package's 1 %


def test_a_recipe_that_does_not_fit_the_model_fails_before_the_database_exists(samples, tmp_path):
    from inspection.line import open_line

    p = tmp_path / "r.toml"
    p.write_text("[verdict.classes.Nonexistent]\nmin_area_px = 4\n")
    with pytest.raises(ConfigError, match="Nonexistent"):
        open_line(camera_spec=f"sim:{samples}", recipe=p, db=tmp_path / "x.db", device="cpu")
    assert not (tmp_path / "x.db").exists()
