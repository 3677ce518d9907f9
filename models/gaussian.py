"""A good-parts-only anomaly model: a Gaussian over pretrained patch features (PaDiM-style).

Mid-level EfficientNet-Lite0 features (stride 8 and 16, upsampled and concatenated) are averaged
over 3x3 neighbourhoods; one mean and covariance over all positions of all good training images
are fitted; a patch's anomaly is its Mahalanobis distance to that Gaussian. Sharing one Gaussian
over positions makes the model indifferent to where a part sits and to its size.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch

from models import backbone
from models.base import DefectClass, Inspector, ModelInfo, Prediction
from models.errors import ModelError
from models.features import InputSpec, PatchFeatures
from models.package import register_kind
from models.runtime import Runtime

KIND = "gaussian-patch"


class GaussianPatchInspector(Inspector):
    def __init__(self, info: ModelInfo, meta: dict[str, Any], state: dict[str, torch.Tensor], device: str, backend: str = "torch") -> None:
        self.info = info
        self.device = torch.device(device)
        self.input = InputSpec.from_meta(meta, info.name)
        taps = backbone.check(meta, info.name)
        self.blur_sigma = float(meta.get("map_blur_sigma", 4.0))
        if set(state) != {"mean", "inv_cov"}:
            raise ModelError(f"Model {info.name} weights hold {sorted(state)}, expected mean and inv_cov.")
        features = PatchFeatures(taps)
        channels = sum(features.extractor.channels)
        if state["mean"].shape != (channels,) or state["inv_cov"].shape != (channels, channels):
            raise ModelError(f"Model {info.name} has weights for {state['mean'].numel()} features; backbone taps {taps} give {channels}.")
        self.mu = state["mean"].to(self.device)
        self.inv_cov = state["inv_cov"].to(self.device)
        self.features = Runtime(features, self.input.example(), backend=backend, device=device)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        return self.input.tensor(image)

    @torch.inference_mode()
    def infer(self, batch: torch.Tensor, image_shape: tuple[int, ...]) -> Prediction:
        f = self.features(batch).to(self.device)  # (1, C, h, w)
        n, c, h, w = f.shape
        d = f.permute(0, 2, 3, 1).reshape(-1, c) - self.mu
        dist = torch.sqrt(torch.clamp(((d @ self.inv_cov) * d).sum(1), min=0)).reshape(h, w)
        small = dist.float().cpu().numpy()
        H, W = image_shape[0], image_shape[1]
        amap = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
        if self.blur_sigma > 0:
            amap = cv2.GaussianBlur(amap, (0, 0), self.blur_sigma * W / max(w * 8, 1))
        score = float(amap.max())
        mask = amap >= self.info.thresholds.pixel
        area = int(mask.sum())
        classes = (DefectClass(self.info.classes[0], area, score),) if area else ()
        return Prediction(score=score, anomaly_map=amap.astype(np.float32, copy=False), defect_mask=mask, classes=classes)


@register_kind(KIND)
def _factory(info: ModelInfo, meta: dict[str, Any], state: dict[str, torch.Tensor], device: str, backend: str) -> Inspector:
    return GaussianPatchInspector(info, meta, state, device, backend)
