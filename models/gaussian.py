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
import torch.nn.functional as F

from models import backbone
from models.base import DefectClass, Inspector, ModelInfo, Prediction
from models.errors import ModelError
from models.package import register_kind

KIND = "gaussian-patch"
DEFAULT_TAPS = (4, 10)


def input_size(h: int, w: int, long_side: int, multiple: int = 16) -> tuple[int, int]:
    """Model input (height, width): the long side scaled to `long_side`, both rounded to `multiple`."""
    scale = long_side / max(h, w)
    return (max(multiple, round(h * scale / multiple) * multiple), max(multiple, round(w * scale / multiple) * multiple))


class PatchFeatures(torch.nn.Module):
    """Image tensor (N, 3, H, W) -> patch features (N, C, H/8, W/8)."""

    def __init__(self, taps: tuple[int, ...] = DEFAULT_TAPS) -> None:
        super().__init__()
        self.extractor = backbone.FeatureExtractor(taps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.extractor(x)
        size = feats[0].shape[-2:]
        feats = [feats[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats[1:]]
        return F.avg_pool2d(torch.cat(feats, dim=1), 3, stride=1, padding=1)


def to_tensor(image: np.ndarray, long_side: int, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 (H, W) or (H, W, 3) RGB -> normalized float tensor (1, 3, h, w)."""
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    h, w = input_size(image.shape[0], image.shape[1], long_side)
    resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(resized).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(mean).view(3, 1, 1)
    s = torch.tensor(std).view(3, 1, 1)
    return ((x - m) / s).unsqueeze(0)


class GaussianPatchInspector(Inspector):
    def __init__(self, info: ModelInfo, meta: dict[str, Any], state: dict[str, torch.Tensor], device: str) -> None:
        self.info = info
        self.device = torch.device(device)
        try:
            inp = meta["input"]
            self.long_side = int(inp["long_side"])
            self.mean = tuple(float(v) for v in inp["mean"])
            self.std = tuple(float(v) for v in inp["std"])
            bb = meta["backbone"]
            taps = tuple(int(t) for t in bb["taps"])
            self.blur_sigma = float(meta.get("map_blur_sigma", 4.0))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"Model {info.name} has incomplete input/backbone metadata ({exc}).") from exc
        if bb.get("name") != backbone.NAME:
            raise ModelError(f"Model {info.name} needs backbone {bb.get('name')!r}; this program has {backbone.NAME}.")
        if bb.get("weights_sha256") and bb["weights_sha256"] != backbone.weights_sha256():
            raise ModelError(f"Model {info.name} was trained on other {backbone.NAME} weights than the installed {backbone.WEIGHTS_PACKAGE}.")
        if set(state) != {"mean", "inv_cov"}:
            raise ModelError(f"Model {info.name} weights hold {sorted(state)}, expected mean and inv_cov.")
        self.features = PatchFeatures(taps).to(self.device).eval()
        channels = sum(self.features.extractor.channels)
        if state["mean"].shape != (channels,) or state["inv_cov"].shape != (channels, channels):
            raise ModelError(f"Model {info.name} has weights for {state['mean'].numel()} features; backbone taps {taps} give {channels}.")
        self.mu = state["mean"].to(self.device)
        self.inv_cov = state["inv_cov"].to(self.device)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        return to_tensor(image, self.long_side, self.mean, self.std)

    @torch.inference_mode()
    def infer(self, batch: torch.Tensor, image_shape: tuple[int, ...]) -> Prediction:
        f = self.features(batch.to(self.device))  # (1, C, h, w)
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
def _factory(info: ModelInfo, meta: dict[str, Any], state: dict[str, torch.Tensor], device: str) -> Inspector:
    return GaussianPatchInspector(info, meta, state, device)
