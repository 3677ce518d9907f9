"""The defect overlay drawn on a part image: mask contours in the verdict's colour."""

from __future__ import annotations

import cv2
import numpy as np

from inspection.result import Verdict

COLORS = {Verdict.OK: (40, 200, 80), Verdict.NG: (235, 40, 40), Verdict.REVIEW: (245, 170, 20)}


def render_overlay(image: np.ndarray, mask: np.ndarray, verdict: Verdict, thickness: int = 2) -> np.ndarray:
    """An RGB copy of `image` with the outline of `mask` drawn on it."""
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()
    if mask.any():
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(rgb, contours, -1, COLORS[verdict], thickness)
    return rgb
