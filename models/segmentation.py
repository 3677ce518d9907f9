"""Supervised defect segmentation: a small U-Net decoder on the pretrained EfficientNet-Lite0 encoder.

It predicts, per pixel, background or one of the defect classes. The anomaly map is the
probability that a pixel is not background; the part score is its maximum after a light local
average (one stray pixel does not reject a part); the defect classes are those that win the
pixels above the pixel threshold.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models import backbone
from models.base import DefectClass, Inspector, ModelInfo, Prediction
from models.errors import ModelError
from models.features import InputSpec
from models.package import register_kind
from models.runtime import Runtime

KIND = "segmentation"
ENCODER_TAPS = (0, 2, 4, 10, 15)  # strides 2, 4, 8, 16, 32
DECODER_WIDTHS = (96, 64, 48, 32)
SCORE_POOL = 5  # pixels of the working resolution averaged before taking the maximum


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """Logits (N, classes + 1, H, W) for an input (N, 3, H, W) with H and W multiples of 32."""

    def __init__(self, n_classes: int, pretrained: bool = True) -> None:
        super().__init__()
        self.encoder = backbone.FeatureExtractor(ENCODER_TAPS, pretrained=pretrained, frozen=False)
        skips = self.encoder.channels  # (16, 24, 40, 112, 320)
        ups = []
        cin = skips[-1]
        for skip, width in zip(reversed(skips[:-1]), DECODER_WIDTHS):
            ups.append(_block(cin + skip, width))
            cin = width
        self.decoder = nn.ModuleList(ups)
        self.head = nn.Conv2d(cin, n_classes + 1, 1)
        strides = self.encoder.strides  # (2, 4, 8, 16, 32)
        self.up_factors = [hi // lo for hi, lo in zip(reversed(strides[1:]), reversed(strides[:-1]))]
        self.final_factor = strides[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        y = feats[-1]
        # Each step up is an exact factor (inputs are multiples of 32). A scale factor, not a traced
        # size, keeps the ONNX export valid for every input size.
        for block, skip, factor in zip(self.decoder, reversed(feats[:-1]), self.up_factors):
            y = F.interpolate(y, scale_factor=factor, mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], dim=1))
        return F.interpolate(self.head(y), scale_factor=self.final_factor, mode="bilinear", align_corners=False)


def defect_probability(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(P(not background), class probabilities) of logits (N, C+1, H, W)."""
    probs = torch.softmax(logits, dim=1)
    return 1.0 - probs[:, 0], probs


class SegmentationInspector(Inspector):
    def __init__(self, info: ModelInfo, meta: dict[str, Any], state: dict[str, torch.Tensor], device: str, backend: str = "torch") -> None:
        self.info = info
        self.device = torch.device(device)
        self.input = InputSpec.from_meta(meta, info.name)
        backbone.check(meta, info.name)
        self.net = UNet(len(info.classes), pretrained=False)
        try:
            self.net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ModelError(f"Model {info.name} weights do not fit a {len(info.classes)}-class U-Net ({first}).") from exc
        self.runtime = Runtime(self.net, self.input.example(), backend=backend, device=device)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        return self.input.tensor(image)

    def forward(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(P(defect) map, class probabilities) at the working resolution."""
        p_def, probs = defect_probability(self.runtime(batch))
        return p_def[0].cpu().numpy(), probs[0].cpu().numpy()

    def infer(self, batch: torch.Tensor, image_shape: tuple[int, ...]) -> Prediction:
        p_def, probs = self.forward(batch)
        return seg_prediction(p_def, probs, image_shape, self.info)


def seg_prediction(p_def: np.ndarray, probs: np.ndarray, image_shape: tuple[int, ...], info: ModelInfo) -> Prediction:
    score = float(cv2.blur(p_def, (SCORE_POOL, SCORE_POOL)).max())
    H, W = image_shape[0], image_shape[1]
    amap = cv2.resize(p_def, (W, H), interpolation=cv2.INTER_LINEAR).astype(np.float32, copy=False)
    mask = amap >= info.thresholds.pixel
    classes: tuple[DefectClass, ...] = ()
    if mask.any():
        winner = cv2.resize(np.argmax(probs[1:], axis=0).astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST)
        found = []
        for c, name in enumerate(info.classes):
            region = mask & (winner == c)
            if region.any():
                found.append(DefectClass(name, int(region.sum()), float(amap[region].max())))
        classes = tuple(sorted(found, key=lambda d: -d.area_px))
    return Prediction(score=score, anomaly_map=amap, defect_mask=mask, classes=classes)


@register_kind(KIND)
def _factory(info: ModelInfo, meta: dict[str, Any], state: dict[str, torch.Tensor], device: str, backend: str) -> Inspector:
    return SegmentationInspector(info, meta, state, device, backend)
