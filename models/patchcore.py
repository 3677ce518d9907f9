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


class NearestSearch:
    """The nearest-neighbour search of one memory bank, the faster of two ways on this CPU.

    `nearest_distances` is the reference (float32). Where the CPU has bfloat16 dot products
    (AVX512-BF16, AMX) one bfloat16 matmul is up to 3x faster (measured here): the features are
    centred on the bank's mean (small numbers keep bfloat16's 8-bit mantissa useful), |b|^2 rides along as one more
    column, so that the `CANDIDATES` best rows of q.b - |b|^2/2 are the likely nearest; the
    distance to each candidate is then computed exactly in float32 and the least one kept. Part
    scores measured identical to the reference on magnetic_tile (the true nearest row was always
    among 4 candidates). Which way runs is measured once, at load; on CUDA float32 is used.
    """

    CANDIDATES = 4
    MIN_GAIN = 1.3  # bfloat16 only where it is clearly faster

    def __init__(self, bank: torch.Tensor, device: torch.device) -> None:
        self.bank = bank.to(device).float()
        self.bank_sq = (self.bank * self.bank).sum(1)[None, :]
        self.use_bf16 = False
        self.probe_ms: dict[str, float] = {}  # what the choice measured, per way (CPU only)
        if device.type == "cpu":
            self.mean = self.bank.mean(0)
            c = self.bank.shape[1]
            self.width = (c + 1 + 15) // 16 * 16  # one column for |b|^2, padded for the matmul kernels
            centred = torch.zeros(self.bank.shape[0], self.width)
            centred[:, :c] = self.bank - self.mean
            centred[:, c] = ((self.bank - self.mean) ** 2).sum(1)
            self.bank_bf16_t = centred.bfloat16().T.contiguous()
            self.use_bf16 = self._bf16_is_faster()

    def __call__(self, queries: torch.Tensor) -> torch.Tensor:
        return self._bf16(queries) if self.use_bf16 else nearest_distances(queries, self.bank, self.bank_sq)

    def _bf16(self, queries: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        c = self.bank.shape[1]
        out = []
        for i in range(0, queries.shape[0], chunk):
            q = queries[i : i + chunk]
            qa = torch.zeros(q.shape[0], self.width)
            qa[:, :c] = q - self.mean
            qa[:, c] = -0.5
            candidates = (qa.bfloat16() @ self.bank_bf16_t).topk(min(self.CANDIDATES, self.bank.shape[0]), dim=1).indices
            out.append(torch.linalg.vector_norm(q[:, None, :] - self.bank[candidates], dim=2).amin(dim=1))
        return torch.cat(out)

    def _bf16_is_faster(self) -> bool:
        import time

        probe = self.bank[torch.randperm(self.bank.shape[0], generator=torch.Generator().manual_seed(0))[:512]] + 0.01
        best = {}
        for name, fn in (("fp32", lambda: nearest_distances(probe, self.bank, self.bank_sq)), ("bf16", lambda: self._bf16(probe))):
            fn()
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            best[name] = min(times)
        self.probe_ms = {k: round(v * 1000, 2) for k, v in best.items()}
        return best["fp32"] >= self.MIN_GAIN * best["bf16"]


class PatchCoreInspector(Inspector):
    # On CUDA the features stay fp32: a part score is the distance between nearly equal features,
    # which fp16 rounding inflates (a synthetic part's score went from 0.074 to 0.201; on held-out
    # ball-screw parts scores moved by up to 0.045, and fp16 was no faster). docs/model_results.md, CUDA.
    CUDA_HALF = False

    def __init__(self, info: ModelInfo, meta: dict[str, Any], state: dict[str, torch.Tensor], device: str, backend: str = "torch") -> None:
        self.info = info
        self.device = torch.device(device)
        self.input = InputSpec.from_meta(meta, info.name)
        taps = backbone.check(meta, info.name)
        self.blur_sigma = float(meta.get("map_blur_sigma", 4.0))
        if set(state) != {"memory_bank"}:
            raise ModelError(f"Model {info.name} weights hold {sorted(state)}, expected memory_bank.")
        # Packages made before per-tap pooling say nothing and pooled jointly.
        features = PatchFeatures(taps, pooling=meta["backbone"].get("pooling", "joint"))
        channels = sum(features.extractor.channels)
        bank = state["memory_bank"]
        if bank.ndim != 2 or bank.shape[1] != channels or bank.shape[0] == 0:
            raise ModelError(f"Model {info.name} has a memory bank of shape {tuple(bank.shape)}; backbone taps {taps} give {channels} features.")
        self.search = NearestSearch(bank, self.device)
        self.features = Runtime(features, self.input.example(), backend=backend, device=device, half=self.CUDA_HALF)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        return self.input.tensor(image)

    @torch.inference_mode()
    def patch_scores(self, batch: torch.Tensor) -> torch.Tensor:
        """(h, w) nearest-neighbour distances of the patches of one preprocessed image."""
        f = self.features(batch).to(self.device)
        _, c, h, w = f.shape
        return self.search(f.permute(0, 2, 3, 1).reshape(-1, c)).reshape(h, w)

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
