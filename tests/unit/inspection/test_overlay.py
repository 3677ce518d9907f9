"""The live view's two overlays: contours in the verdict's colour, a heatmap red at the NG threshold."""

from __future__ import annotations

import numpy as np

from inspection.result import Verdict
from inspection.runtime.overlay import COLORS, render


def test_contours_and_heatmap():
    image = np.full((40, 60), 128, np.uint8)
    mask = np.zeros((40, 60), bool)
    mask[10:20, 10:20] = True
    amap = np.zeros((40, 60), np.float32)
    amap[30:, 40:] = 2.0  # at the NG threshold
    contours = render(image, mask, amap, Verdict.NG, "contours", ng_at=2.0)
    assert contours.shape == (40, 60, 3) and tuple(contours[10, 10]) == COLORS[Verdict.NG]
    assert tuple(contours[0, 0]) == (128, 128, 128)  # untouched outside the outline
    heat = render(image, mask, amap, Verdict.NG, "heatmap", ng_at=2.0)
    hot, cold = heat[35, 50].astype(int), heat[5, 5].astype(int)
    assert hot[0] > hot[2] and cold[2] > cold[0]  # red at the threshold, blue at 0
