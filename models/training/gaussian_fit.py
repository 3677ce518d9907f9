"""Fit a gaussian-patch model on good images and calibrate its thresholds on held-out good images."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch

from models import backbone
from models.features import DEFAULT_TAPS, PatchFeatures, to_tensor
from models.gaussian import KIND

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@torch.inference_mode()
def fit(images: Iterable[np.ndarray], total: int, *, long_side: int = 512, taps: tuple[int, ...] = DEFAULT_TAPS,
        shrinkage: float = 0.01, progress: Progress | None = None) -> dict[str, torch.Tensor]:
    """Mean and inverse covariance of patch features over all positions of all images (streamed)."""
    net = PatchFeatures(taps).eval()
    count = 0
    s1: torch.Tensor | None = None
    s2: torch.Tensor | None = None
    for i, image in enumerate(images):
        f = net(to_tensor(image, long_side, backbone.IMAGENET_MEAN, backbone.IMAGENET_STD))
        v = f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]).double()
        s1 = v.sum(0) if s1 is None else s1 + v.sum(0)
        s2 = v.T @ v if s2 is None else s2 + v.T @ v
        count += v.shape[0]
        if progress:
            progress(i + 1, total)
    if s1 is None or s2 is None:
        raise ValueError("no training images")
    mean = s1 / count
    cov = s2 / count - torch.outer(mean, mean)
    # Ledoit-Wolf-style shrinkage towards the average variance keeps the inverse well conditioned.
    cov = (1 - shrinkage) * cov + shrinkage * torch.eye(cov.shape[0], dtype=cov.dtype) * cov.diagonal().mean()
    return {"mean": mean.float(), "inv_cov": torch.linalg.inv(cov).float()}


def metadata(*, name: str, version: str, long_side: int, taps: tuple[int, ...], thresholds: dict[str, float],
             classes: Sequence[str], training: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": KIND,
        "name": name,
        "version": version,
        "backbone": {"name": backbone.NAME, "weights": backbone.WEIGHTS_PACKAGE, "weights_sha256": backbone.weights_sha256(), "taps": list(taps)},
        "input": {"long_side": long_side, "multiple": 16, "mean": list(backbone.IMAGENET_MEAN), "std": list(backbone.IMAGENET_STD), "color": "RGB (Mono8 replicated)"},
        "map_blur_sigma": 4.0,
        "thresholds": thresholds,
        "classes": list(classes),
        "training": training,
        "metrics": metrics,
    }
