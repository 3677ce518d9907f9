"""PatchCore: a good-parts-only anomaly model with a coreset memory bank.

Locally aware mid-level features of the pretrained backbone (models.features) are compared, patch
by patch, with a memory bank of good-part patches; a patch's anomaly is its distance to the
nearest bank patch, the anomaly map is those distances (upsampled, lightly blurred) and the part
score is the map's maximum. The bank is a greedy coreset of the training patches, capped in size,
so memory and inference time stay bounded however many good parts were seen.
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

KIND = "patchcore"


def nearest_distances(queries: torch.Tensor, bank: torch.Tensor, bank_sq: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Euclidean distance of each query row to its nearest bank row. The nearest row is the argmin
    of |b|^2 - 2 q.b (|q|^2 is the same for every b), found with one fused matmul per chunk; the
    distance to it is then computed directly, since the expansion loses float32 precision exactly
    where distances are small."""
    out = []
    bank_t = bank.T
    for i in range(0, queries.shape[0], chunk):
        q = queries[i : i + chunk]
        nearest = torch.addmm(bank_sq, q, bank_t, beta=1.0, alpha=-2.0).argmin(dim=1)
        out.append(torch.linalg.vector_norm(q - bank[nearest], dim=1))
    return torch.cat(out)


class PatchCoreInspector(Inspector):
    def __init__(self, info: ModelInfo, meta: dict[str, Any], state: dict[str, torch.Tensor], device: str, backend: str = "torch") -> None:
        self.info = info
        self.device = torch.device(device)
        self.input = InputSpec.from_meta(meta, info.name)
        taps = backbone.check(meta, info.name)
        self.blur_sigma = float(meta.get("map_blur_sigma", 4.0))
        if set(state) != {"memory_bank"}:
            raise ModelError(f"Model {info.name} weights hold {sorted(state)}, expected memory_bank.")
        features = PatchFeatures(taps)
        channels = sum(features.extractor.channels)
        bank = state["memory_bank"]
        if bank.ndim != 2 or bank.shape[1] != channels or bank.shape[0] == 0:
            raise ModelError(f"Model {info.name} has a memory bank of shape {tuple(bank.shape)}; backbone taps {taps} give {channels} features.")
        self.bank = bank.to(self.device).float()
        self.bank_sq = (self.bank * self.bank).sum(1)[None, :]
        self.features = Runtime(features, self.input.example(), backend=backend, device=device)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        return self.input.tensor(image)

    @torch.inference_mode()
    def patch_scores(self, batch: torch.Tensor) -> torch.Tensor:
        """(h, w) nearest-neighbour distances of the patches of one preprocessed image."""
        f = self.features(batch).to(self.device)
        _, c, h, w = f.shape
        return nearest_distances(f.permute(0, 2, 3, 1).reshape(-1, c), self.bank, self.bank_sq).reshape(h, w)

    def infer(self, batch: torch.Tensor, image_shape: tuple[int, ...]) -> Prediction:
        small = self.patch_scores(batch).float().cpu().numpy()
        return map_to_prediction(small, image_shape, batch.shape[-1], self.blur_sigma, self.info)


def map_to_prediction(small: np.ndarray, image_shape: tuple[int, ...], input_width: int, blur_sigma: float, info: ModelInfo) -> Prediction:
    """Patch-level anomaly map -> image-sized map (blurred with `blur_sigma` input pixels), score, mask."""
    H, W = image_shape[0], image_shape[1]
    amap = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
    if blur_sigma > 0:
        amap = cv2.GaussianBlur(amap, (0, 0), blur_sigma * W / input_width)
    score = float(amap.max())
    mask = amap >= info.thresholds.pixel
    area = int(mask.sum())
    classes = (DefectClass(info.classes[0], area, score),) if area else ()
    return Prediction(score=score, anomaly_map=amap.astype(np.float32, copy=False), defect_mask=mask, classes=classes)


@register_kind(KIND)
def _factory(info: ModelInfo, meta: dict[str, Any], state: dict[str, torch.Tensor], device: str, backend: str) -> Inspector:
    return PatchCoreInspector(info, meta, state, device, backend)
