"""Evaluate an Inspector on labelled parts: image- and pixel-level metrics, rates at the operating
threshold, per-class detection and latency. Used by `lepton-inspect eval` and the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

from models.base import Inspector
from models.datasets import Sample, read_image, read_mask
from models.metrics import aupro, auroc, per_class_detection, pixel_auroc, rates_at, threshold_at_false_reject

PIXEL_EVAL_LONG_SIDE = 512  # pixel metrics are computed on maps and masks scaled to this long side

Progress = Callable[[int, int], None]


def _scaled(amap: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = mask.shape
    scale = min(1.0, PIXEL_EVAL_LONG_SIDE / max(h, w))
    if scale >= 1.0:
        return amap, mask
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return (
        cv2.resize(amap, size, interpolation=cv2.INTER_AREA),
        cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0,
    )


def evaluate(
    inspector: Inspector, samples: Sequence[Sample], *, color: bool = True, progress: Progress | None = None
) -> dict[str, Any]:
    labels, scores, classes, latencies = [], [], [], []
    masks, maps = [], []
    for i, s in enumerate(samples):
        image = read_image(s.image, color=color)
        t0 = time.perf_counter()
        p = inspector.predict(image)
        latencies.append((time.perf_counter() - t0) * 1000)
        labels.append(s.is_defect)
        scores.append(p.score)
        classes.append(s.cls)
        if s.is_defect and s.mask is None:
            pass  # image-level only
        else:
            amap, mask = _scaled(p.anomaly_map, read_mask(s, image.shape[:2]))
            maps.append(amap)
            masks.append(mask)
        if progress:
            progress(i + 1, len(samples))
    y = np.asarray(labels)
    x = np.asarray(scores)
    t = inspector.info.thresholds
    out: dict[str, Any] = {"parts": len(samples), "good": int((~y).sum()), "defective": int(y.sum())}
    if y.any() and (~y).any():
        out["image_auroc"] = auroc(y, x)
        at5 = threshold_at_false_reject(x[~y], 0.05)
        out["escape_rate_at_5pct_false_rejects"] = rates_at(y, x, at5)["escape_rate"]
        out["escape_rate_at_1pct_false_rejects"] = rates_at(y, x, threshold_at_false_reject(x[~y], 0.01))["escape_rate"]
        out["per_class_at_5pct_false_rejects"] = per_class_detection(classes, x, at5)
    if any(m.any() for m in masks):
        out["pixel_auroc"] = pixel_auroc(masks, maps)
        out["aupro"] = aupro(masks, maps)
    r = rates_at(y, x, t.ng_at)
    out.update(
        {
            "escapes": int((y & (x < t.ng_at)).sum()),
            "false_rejects": int((~y & (x >= t.ng_at)).sum()),
            "f1": r["f1"],
            "false_reject_rate": r["false_reject_rate"],
            "escape_rate": r["escape_rate"],
            "review_rate": float(((x >= t.ok_below) & (x < t.ng_at)).mean()),
            **verdict_shares(y, x, t.ok_below, t.ng_at),
            "per_class": per_class_detection(classes, x, t.ng_at),
            "latency_ms_p50": float(np.percentile(latencies, 50)),
            "latency_ms_p99": float(np.percentile(latencies, 99)),
            "thresholds": {"ok_below": t.ok_below, "ng_at": t.ng_at},
        }
    )
    return out


def verdict_shares(y: np.ndarray, x: np.ndarray, ok_below: float, ng_at: float) -> dict[str, float]:
    """Where the package's own thresholds send the parts: the shares of defective parts passed as
    OK and sent to REVIEW (`escape_rate` counts both), of good parts rejected (NG) and sent to
    REVIEW. NaN where there is no part of that label."""
    ok, ng = x < ok_below, x >= ng_at
    review = ~ok & ~ng

    def share(label: np.ndarray, verdict: np.ndarray) -> float:
        return float((label & verdict).sum() / label.sum()) if label.any() else float("nan")

    return {
        "defects_passed_ok": share(y, ok),
        "defects_to_review": share(y, review),
        "good_ng": share(~y, ng),
        "good_review": share(~y, review),
    }


def compare(
    inspectors: dict[str, Inspector], samples: Sequence[Sample], *, progress: Progress | None = None
) -> dict[str, Any]:
    """Each model evaluated on the same parts at its own operating thresholds, side by side."""
    out: dict[str, Any] = {
        "parts": len(samples),
        "good": sum(not s.is_defect for s in samples),
        "defective": sum(s.is_defect for s in samples),
        "groups": len({s.group for s in samples}),
        "models": {},
    }
    done = 0
    for role, inspector in inspectors.items():
        info = inspector.info
        color = (info.metadata.get("input") or {}).get("color") != "grey"

        def step(i: int, n: int, base: int = done) -> None:
            if progress:
                progress(base + i, len(samples) * len(inspectors))

        m = evaluate(inspector, samples, color=color, progress=step)
        out["models"][role] = {"model": f"{info.name} v{info.version}", "kind": info.kind, "sha256": info.sha256, **m}
        done += len(samples)
    return out
