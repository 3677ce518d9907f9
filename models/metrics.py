"""Evaluation metrics, as the field defines them (MVTec AD for AUPRO).

Scores: higher is more defective. Image labels: True = defective. Everything is exact (no
threshold grid): curves are built from the sorted scores, ties handled as one threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def _roc(
    labels: np.ndarray, scores: np.ndarray, weights_pos: np.ndarray | None = None, weights_neg: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every distinct threshold, from (0, 0) to (1, 1); optional per-sample weights."""
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    pos = (labels[order] if weights_pos is None else weights_pos[order]).astype(np.float64)
    neg = ((~labels[order]) if weights_neg is None else weights_neg[order]).astype(np.float64)
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]  # last index of each run of equal scores
    tpr = np.r_[0.0, tp[last] / max(tp[-1], 1e-300)]
    fpr = np.r_[0.0, fp[last] / max(fp[-1], 1e-300)]
    return fpr, tpr


def auroc(labels: Sequence[bool] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve (the probability a defective sample outscores a good one, ties half)."""
    y = np.asarray(labels, dtype=bool).ravel()
    x = np.asarray(scores, dtype=np.float64).ravel()
    if y.all() or not y.any():
        raise ValueError("AUROC needs both good and defective samples")
    fpr, tpr = _roc(y, x)
    return float(np.trapezoid(tpr, fpr))


def pixel_auroc(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray]) -> float:
    """AUROC over all pixels of all images."""
    return auroc(np.concatenate([m.ravel() for m in masks]), np.concatenate([a.ravel() for a in maps]))


def aupro(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray], fpr_limit: float = 0.3) -> float:
    """Area under the per-region-overlap curve up to `fpr_limit` false-positive rate, divided by
    `fpr_limit` (MVTec AD). Each connected defect region counts equally, whatever its size; the
    false-positive rate is over all defect-free pixels of all images."""
    weights_pos, weights_neg, scores = [], [], []
    regions = 0
    for mask, amap in zip(masks, maps, strict=True):  # one map per mask
        n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        w = np.zeros(mask.shape, dtype=np.float64)
        for r in range(1, n):
            region = labels == r
            w[region] = 1.0 / region.sum()
        regions += n - 1
        weights_pos.append(w.ravel())
        weights_neg.append((~mask).ravel())
        scores.append(amap.ravel().astype(np.float64))
    if regions == 0:
        raise ValueError("AUPRO needs at least one defect region")
    fpr, pro = _roc(
        np.zeros(1, dtype=bool), np.concatenate(scores), np.concatenate(weights_pos), np.concatenate(weights_neg)
    )
    # pro is normalized by the total weight (= number of regions): the mean overlap over regions.
    cut = np.searchsorted(fpr, fpr_limit, side="right")
    f, p = fpr[:cut], pro[:cut]
    if cut < fpr.size and f[-1] < fpr_limit:  # interpolate the point at the limit
        f0, f1, p0, p1 = fpr[cut - 1], fpr[cut], pro[cut - 1], pro[cut]
        f = np.r_[f, fpr_limit]
        p = np.r_[p, p0 + (p1 - p0) * (fpr_limit - f0) / (f1 - f0)]
    return float(np.trapezoid(p, f) / fpr_limit)


def threshold_at_false_reject(good_scores: Sequence[float] | np.ndarray, rate: float) -> float:
    """The lowest threshold (reject at score >= t) that rejects at most `rate` of these good parts."""
    s = np.sort(np.asarray(good_scores, dtype=np.float64))[::-1]
    allowed = int(np.floor(rate * s.size + 1e-9))  # how many good parts may be rejected
    if allowed >= s.size:
        return float(s[-1])
    return float(np.nextafter(s[allowed], np.inf))  # just above the first good part that must pass


def rates_at(
    labels: Sequence[bool] | np.ndarray, scores: Sequence[float] | np.ndarray, threshold: float
) -> dict[str, float]:
    """Reject at score >= threshold: false-reject rate (good rejected), escape rate (defective
    passed), precision, recall and F1 for 'defective' as the positive class."""
    y = np.asarray(labels, dtype=bool)
    rejected = np.asarray(scores, dtype=np.float64) >= threshold
    tp = int((rejected & y).sum())
    fp = int((rejected & ~y).sum())
    fn = int((~rejected & y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "false_reject_rate": fp / max(int((~y).sum()), 1),
        "escape_rate": fn / max(int(y.sum()), 1),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
    }


def per_class_detection(
    classes: Sequence[str], scores: Sequence[float] | np.ndarray, threshold: float
) -> dict[str, float]:
    """For each defect class, the fraction of its parts rejected (score >= threshold)."""
    s = np.asarray(scores, dtype=np.float64)
    out = {}
    for c in sorted(set(classes) - {"good"}):
        idx = [i for i, k in enumerate(classes) if k == c]
        out[c] = float((s[idx] >= threshold).mean())
    return out
