"""PatchCore: a good-parts-only anomaly model with a coreset memory bank.

Locally aware mid-level features of the pretrained backbone (models.features) are compared, patch
by patch, with a memory bank of good-part patches; a patch's anomaly is its distance to the
nearest bank patch, the anomaly map is those distances (upsampled, lightly blurred) and the part
score is the map's maximum. The bank is a greedy coreset of the training patches, capped in size,
so memory and inference time stay bounded however many good parts were seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import torch

import models.backbone as backbone
from models.base import DefectClass, Inspector, ModelInfo, Prediction
from models.errors import ModelError
from models.features import InputSpec, PatchFeatures
from models.runtime import InputBatch, Runtime, shape_groups

KIND = "patchcore"
# Where the patch map is blurred (`map_at` in the metadata): `image` (packages without the key,
# calibrated so) upsamples the patch map to the image and blurs there; `input` blurs at the
# input size and upsamples once, the same map for a fraction of the work (5 ms -> 1 ms for the
# demo's 1130x460 images; docs/model_results.md, "Inference speed").
MAP_AT = ("image", "input")


def nearest_distances(
    queries: torch.Tensor, bank: torch.Tensor, bank_sq: torch.Tensor, chunk: int = 4096
) -> torch.Tensor:
    """Euclidean distance of each query row to its nearest bank row. The nearest row is the argmin
    of |b|^2 - 2 q.b (|q|^2 is the same for every b), found with one fused matmul per chunk; the
    distance to it is then computed directly, since the expansion loses float32 precision exactly
    where distances are small."""
    out = []
    bank_t = bank.T
    for i in range(0, queries.shape[0], chunk):
        q = queries[i : i + chunk]
        d = torch.addmm(bank_sq, q, bank_t, beta=1.0, alpha=-2.0)
        # NumPy's argmin, the same first-least index, takes a sixth of torch's time on the CPU here
        # (0.24 against 1.5 ms for 1664 x 2048).
        nearest = torch.from_numpy(d.numpy().argmin(axis=1)) if d.device.type == "cpu" else d.argmin(dim=1)
        out.append(torch.linalg.vector_norm(q - bank[nearest], dim=1))
    return out[0] if len(out) == 1 else torch.cat(out)


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
            candidates = (
                (qa.bfloat16() @ self.bank_bf16_t).topk(min(self.CANDIDATES, self.bank.shape[0]), dim=1).indices
            )
            out.append(torch.linalg.vector_norm(q[:, None, :] - self.bank[candidates], dim=2).amin(dim=1))
        return torch.cat(out)

    def _bf16_is_faster(self) -> bool:
        probe = self.bank[torch.randperm(self.bank.shape[0], generator=torch.Generator().manual_seed(0))[:512]] + 0.01

        def fp32() -> torch.Tensor:
            return nearest_distances(probe, self.bank, self.bank_sq)

        def bf16() -> torch.Tensor:
            return self._bf16(probe)

        best = {name: _best_time(way) for name, way in (("fp32", fp32), ("bf16", bf16))}
        self.probe_ms = {k: round(v * 1000, 2) for k, v in best.items()}
        return best["fp32"] >= self.MIN_GAIN * best["bf16"]


def _best_time(way: Callable[[], object], runs: int = 3) -> float:
    """The least of `runs` timings of `way` in seconds, after one call to warm it up."""
    way()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        way()
        times.append(time.perf_counter() - t0)
    return min(times)


class PatchCoreInspector(Inspector):
    # On CUDA the features stay fp32: a part score is the distance between nearly equal features,
    # which fp16 rounding inflates (a synthetic part's score went from 0.074 to 0.201; on held-out
    # ball-screw parts scores moved by up to 0.045, and fp16 was no faster). docs/model_results.md, CUDA.
    CUDA_HALF = False

    def __init__(
        self, info: ModelInfo, meta: dict[str, Any], state: dict[str, torch.Tensor], device: str, backend: str = "torch"
    ) -> None:
        self.info = info
        self.device = torch.device(device)
        self.input = InputSpec.from_meta(meta, info.name)
        taps = backbone.check(meta, info.name)
        self.blur_sigma = float(meta.get("map_blur_sigma", 4.0))
        self.map_at = meta.get("map_at", "image")
        if self.map_at not in MAP_AT:
            raise ModelError(
                f"Model {info.name} asks for its anomaly map at {self.map_at!r}, not one of {', '.join(MAP_AT)}."
            )
        if set(state) != {"memory_bank"}:
            raise ModelError(f"Model {info.name} weights hold {sorted(state)}, expected memory_bank.")
        # Packages made before per-tap pooling say nothing and pooled jointly.
        features = PatchFeatures(taps, pooling=meta["backbone"].get("pooling", "joint"))
        channels = sum(features.extractor.channels)
        bank = state["memory_bank"]
        if bank.ndim != 2 or bank.shape[1] != channels or bank.shape[0] == 0:
            raise ModelError(
                f"Model {info.name} has a memory bank of shape {tuple(bank.shape)}; "
                f"backbone taps {taps} give {channels} features."
            )
        self.stride = features.extractor.strides[0]  # input pixels per patch (inputs are multiples of 16)
        self.search = NearestSearch(bank, self.device)
        self.features = Runtime(features, self.input.example(), backend=backend, device=device, half=self.CUDA_HALF)
        self.input_batch = InputBatch()  # forward's reused input batches (forward runs on one thread)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        return self.input.tensor(image)

    @torch.inference_mode()
    def forward(self, inputs: list[torch.Tensor]) -> list[np.ndarray]:
        """Patch anomaly maps (h, w), float32, one per preprocessed view, in order: the features
        of each group of equal shapes in one network call, every patch of every view in one search."""
        if not inputs:
            return []
        groups = shape_groups(inputs)
        maps: list[tuple[list[int], tuple[int, int]]] = []
        queries = []
        for idx in groups:
            f = self.features(self.input_batch([inputs[i] for i in idx])).to(self.device)
            n, c, h, w = f.shape
            maps.append((idx, (h, w)))
            queries.append(f.permute(0, 2, 3, 1).reshape(n * h * w, c))
        d = self.search(queries[0] if len(queries) == 1 else torch.cat(queries)).float().cpu().numpy()
        out: list[np.ndarray] = [np.empty(0, np.float32)] * len(inputs)
        at = 0
        for idx, (h, w) in maps:
            for i in idx:
                out[i] = d[at : at + h * w].reshape(h, w)
                at += h * w
        return out

    def finish(self, raw: np.ndarray, image_shape: tuple[int, ...]) -> Prediction:
        """The patch map of one view -> image-sized map, score and mask (NumPy and OpenCV only)."""
        input_hw = (raw.shape[0] * self.stride, raw.shape[1] * self.stride)
        return map_to_prediction(
            raw, image_shape, input_hw, self.blur_sigma, self.info, at_input=self.map_at == "input"
        )

    def infer(self, batch: torch.Tensor, image_shape: tuple[int, ...]) -> Prediction:
        return self.finish(self.forward([batch])[0], image_shape)


def map_to_prediction(
    small: np.ndarray,
    image_shape: tuple[int, ...],
    input_hw: tuple[int, int],
    blur_sigma: float,
    info: ModelInfo,
    at_input: bool = False,
) -> Prediction:
    """Patch-level anomaly map -> image-sized map (blurred with `blur_sigma` input pixels), score, mask.
    `at_input`: blur at the input size, then upsample (MAP_AT `input`); else blur the upsampled map."""
    H, W = image_shape[0], image_shape[1]
    if at_input:
        amap = cv2.resize(small, (input_hw[1], input_hw[0]), interpolation=cv2.INTER_LINEAR)
        if blur_sigma > 0:
            amap = cv2.GaussianBlur(amap, (0, 0), blur_sigma)
        amap = cv2.resize(amap, (W, H), interpolation=cv2.INTER_LINEAR)
    else:
        amap = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
        if blur_sigma > 0:
            amap = cv2.GaussianBlur(amap, (0, 0), blur_sigma * W / input_hw[1])
    # The maximum of the image-sized map (not of the input-sized one, a hair higher): the score is
    # the map's peak, so a part at or above the pixel threshold always has a mask to show.
    score = float(amap.max())
    mask = amap >= info.thresholds.pixel
    area = int(np.count_nonzero(mask))  # the same count as mask.sum(), in a seventh of the time
    classes = (DefectClass(info.classes[0], area, score),) if area else ()
    return Prediction(score=score, anomaly_map=amap.astype(np.float32, copy=False), defect_mask=mask, classes=classes)
