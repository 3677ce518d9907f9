"""Metrics against hand-computed cases and against brute-force references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from models.metrics import aupro, auroc, per_class_detection, pixel_auroc, rates_at, threshold_at_false_reject


def brute_auroc(y, s):
    pos = [score for score, defective in zip(s, y, strict=True) if defective]
    neg = [score for score, defective in zip(s, y, strict=True) if not defective]
    wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auroc_hand_cases():
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert auroc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    assert auroc([0, 0, 1], [1, 2, 3]) == 1.0
    assert auroc([1, 0, 0], [1, 2, 3]) == 0.0
    with pytest.raises(ValueError):
        auroc([1, 1], [0.1, 0.2])


def test_auroc_matches_pairwise_counting_with_ties():
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.3
    s = np.round(rng.normal(size=300) + y, 1)  # many ties
    assert auroc(y, s) == pytest.approx(brute_auroc(y, s), abs=1e-12)


def test_pixel_auroc_pools_all_pixels():
    masks = [np.array([[1, 0]], bool), np.array([[0, 0]], bool)]
    maps = [np.array([[0.9, 0.2]]), np.array([[0.95, 0.1]])]
    assert pixel_auroc(masks, maps) == pytest.approx(brute_auroc([1, 0, 0, 0], [0.9, 0.2, 0.95, 0.1]))


def test_aupro_hand_case():
    # Ten defect-free pixels scored 0.1 .. 1.0 and one 1-pixel defect scored 0.85. The defect is
    # found from threshold 0.85 down, where 2 of 10 good pixels (1.0, 0.9) are already above:
    # PRO jumps from 0 to 1 at FPR 0.2, so the area up to FPR 0.3 is 0.1, normalised 1/3.
    amap = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 0.85]])
    mask = np.zeros_like(amap, dtype=bool)
    mask[0, 10] = True
    assert aupro([mask], [amap]) == pytest.approx(1 / 3)
    assert aupro([mask], [amap], fpr_limit=1.0) == pytest.approx(0.8)


def brute_aupro(masks, maps, limit=0.3):
    import cv2

    regions = []
    for m, a in zip(masks, maps, strict=True):
        n, lab = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
        regions += [a[lab == r] for r in range(1, n)]
    neg = np.concatenate([a[~m] for m, a in zip(masks, maps, strict=True)])
    pts = [(0.0, 0.0)]
    for t in np.unique(np.concatenate([a.ravel() for a in maps]))[::-1]:
        pts.append(((neg >= t).mean(), np.mean([(r >= t).mean() for r in regions])))
    f, p = np.array(pts).T
    g = np.linspace(0, limit, 20001)  # fine grid on the step-wise-linear curve
    return np.trapezoid(np.interp(g, f, p), g) / limit


def test_aupro_counts_each_region_equally_and_matches_a_threshold_sweep():
    rng = np.random.default_rng(1)
    masks, maps = [], []
    for k in range(4):
        m = np.zeros((24, 24), bool)
        m[2:4, 2:4] = True  # a small region
        if k % 2:
            m[10:20, 8:20] = True  # a large one
        maps.append(rng.random((24, 24)) + 0.6 * m * rng.random((24, 24)))
        masks.append(m)
    assert aupro(masks, maps) == pytest.approx(brute_aupro(masks, maps), abs=2e-4)


def test_threshold_hits_the_false_reject_target():
    good = np.arange(1, 101, dtype=float)  # 100 good parts
    for rate in (0.01, 0.05, 0.1):
        t = threshold_at_false_reject(good, rate)
        assert rates_at(np.zeros(100, bool), good, t)["false_reject_rate"] == pytest.approx(rate)


def test_rates_and_f1_hand_case():
    labels = [0, 0, 0, 1, 1]
    scores = [0.1, 0.6, 0.2, 0.7, 0.3]
    r = rates_at(labels, scores, 0.5)  # rejects 0.6 (good) and 0.7 (defect); 0.3 escapes
    assert r["false_reject_rate"] == pytest.approx(1 / 3)
    assert r["escape_rate"] == pytest.approx(1 / 2)
    assert r["precision"] == pytest.approx(0.5) and r["recall"] == pytest.approx(0.5) and r["f1"] == pytest.approx(0.5)
    assert per_class_detection(["good", "Crack", "Crack", "Fray"], [0.1, 0.9, 0.2, 0.6], 0.5) == {
        "Crack": 0.5,
        "Fray": 1.0,
    }
