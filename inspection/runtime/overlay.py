"""The defect overlay drawn on a part image: mask contours in the verdict's colour, or the anomaly
map as a heatmap (blue at 0, red at the NG threshold and above)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from inspection.result import Verdict

COLORS = {Verdict.OK: (40, 200, 80), Verdict.NG: (235, 40, 40), Verdict.REVIEW: (245, 170, 20)}
MODES = ("contours", "heatmap")


def render_overlay(image: np.ndarray, mask: np.ndarray, verdict: Verdict, thickness: int = 2) -> np.ndarray:
    """An RGB copy of `image` with the outline of `mask` drawn on it."""
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()
    if mask.any():
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(rgb, contours, -1, COLORS[verdict], thickness)
    return rgb


def render_heatmap(image: np.ndarray, anomaly_map: np.ndarray, ng_at: float, alpha: float = 0.45) -> np.ndarray:
    """An RGB copy of `image` blended with its anomaly map, scaled so that the NG threshold is red."""
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image
    scale = 255.0 / ng_at if ng_at > 0 and np.isfinite(ng_at) else 255.0 / max(float(anomaly_map.max()), 1e-6)
    heat: np.ndarray = np.clip(anomaly_map * scale, 0, 255).astype(np.uint8)
    if heat.shape != rgb.shape[:2]:
        heat = cv2.resize(heat, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    colored = cv2.cvtColor(cv2.applyColorMap(heat, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(rgb, 1 - alpha, colored, alpha, 0)


def render(
    image: np.ndarray, mask: np.ndarray, anomaly_map: np.ndarray, verdict: Verdict, mode: str, ng_at: float
) -> np.ndarray:
    """The overlay an operator picked: `contours` or `heatmap`."""
    if mode == "heatmap":
        return render_heatmap(image, anomaly_map, ng_at)
    return render_overlay(image, mask, verdict)


def recorded_part(image: Path | None, mask: Path | None, verdict: str, shown_height: int = 0) -> np.ndarray | None:
    """A recorded part's image file as RGB with its mask file's outline in the verdict's colour,
    thick enough to stay visible when shown `shown_height` pixels high (0: at about full size);
    None when the image was not kept or cannot be read."""
    if image is None or not image.is_file():  # (not kept, removed, or not yet written: rows are committed first)
        return None
    bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    m = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE) if mask is not None else None
    if m is not None and m.shape == rgb.shape[:2]:
        thickness = max(2, rgb.shape[0] // shown_height * 2) if shown_height else max(2, rgb.shape[1] // 200)
        rgb = render_overlay(rgb, m > 0, Verdict(verdict), thickness=thickness)
    return rgb
