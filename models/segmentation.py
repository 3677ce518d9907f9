"""Supervised defect segmentation: a small U-Net decoder on the pretrained EfficientNet-Lite0 encoder.

It predicts, per pixel, background or one of the defect classes, and per part a defect logit
(the image head). The anomaly map is the probability that a pixel is not background; the part
score follows the package's rule (SCORE_RULES): by default the mean of the head's probability and
the map's maximum (upsampled from stride 4, so one stray pixel is never a peak on its own); the defect
classes are those that win the pixels above the pixel threshold.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import models.backbone as backbone
from models.base import DefectClass, Inspector, ModelInfo, Prediction
from models.errors import ModelError
from models.features import InputSpec
from models.runtime import InputBatch, Runtime, shape_groups

KIND = "segmentation"
# Encoder blocks tapped (2, 4, 10, 15: strides 4, 8, 16, 32) and decoder widths; the decoder ends at stride 4.
DEFAULT_ARCH = {"taps": [2, 4, 10, 15], "widths": [96, 64, 48]}
# Pixels of the working resolution averaged before the map's maximum is taken. 1 (no averaging):
# the map is already upsampled from stride 4, and across 9 cross-validation folds of both datasets
# the plain maximum ranked parts better than a 5x5 average (image AUROC +0.003 magnetic_tile, +0.008
# ball screw). Packages without `score_pool` in their metadata were calibrated with 5.
SCORE_POOL = 1
LEGACY_SCORE_POOL = 5
IMAGE_HEAD_WIDTH = 64
# Part score: the mean of the image head's defect probability and the maximum of the map.
SCORE_RULES = ("mean", "pixel_max", "head")


BLOCKS = ("conv", "separable")


def decoder_block(arch: dict[str, Any]) -> str:
    """The decoder block kind an architecture asks for (`conv` when it says none, as older packages)."""
    kind = arch.get("block", "conv")
    if not isinstance(kind, str) or kind not in BLOCKS:
        raise ModelError(f"Decoder block {kind!r} is not one of {', '.join(BLOCKS)}.")
    return kind


def _block(cin: int, cout: int, stride: int = 1, kind: str = "conv") -> nn.Sequential:
    """A 3x3 convolution, or (`separable`) a 1x1 then a depthwise 3x3: about a tenth of the
    multiply-adds at the decoder's widths."""
    if kind == "conv":
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
        )
    return nn.Sequential(
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, stride=stride, padding=1, groups=cout, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """For an input (N, 3, H, W) with H and W multiples of 32: per-pixel logits (N, classes + 1, H, W)
    and an image-level defect logit (N,).

    The decoder climbs from the deepest tap to the shallowest through skip connections and is
    upsampled from there (stride 4 by default: the stride-2 stage cost more than the whole encoder on
    the CPU for no measured gain). The image head (as in mixed-supervision defect detectors) pools
    the decoder's features and the defect map over the whole part: it learns from part labels what
    a pixel maximum alone cannot - that one dark dot in a good tile's texture is not a blowhole.
    """

    def __init__(self, n_classes: int, pretrained: bool = True, arch: dict[str, Any] | None = None) -> None:
        super().__init__()
        arch = arch or DEFAULT_ARCH
        taps, widths, kind = tuple(arch["taps"]), tuple(arch["widths"]), decoder_block(arch)
        if len(widths) != len(taps) - 1:
            raise ModelError(f"A U-Net with taps {taps} needs {len(taps) - 1} decoder widths, not {widths}.")
        self.encoder = backbone.FeatureExtractor(taps, pretrained=pretrained, frozen=False)
        skips = self.encoder.channels
        ups = []
        cin = skips[-1]
        for skip, width in zip(reversed(skips[:-1]), widths, strict=True):
            ups.append(_block(cin + skip, width, kind=kind))
            cin = width
        self.decoder = nn.ModuleList(ups)
        self.head = nn.Conv2d(cin, n_classes + 1, 1)
        self.image_conv = nn.Sequential(
            _block(cin, IMAGE_HEAD_WIDTH, stride=2, kind=kind),
            _block(IMAGE_HEAD_WIDTH, IMAGE_HEAD_WIDTH, stride=2, kind=kind),
        )
        self.image_fc = nn.Linear(2 * IMAGE_HEAD_WIDTH + 2, 1)
        strides = self.encoder.strides
        self.up_factors = [hi // lo for hi, lo in zip(reversed(strides[1:]), reversed(strides[:-1]), strict=True)]
        self.final_factor = strides[0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.encoder(x)
        y = feats[-1]
        # Each step up is an exact factor (inputs are multiples of 32). A scale factor, not a traced
        # size, keeps the ONNX export valid for every input size.
        for block, skip, factor in zip(self.decoder, reversed(feats[:-1]), self.up_factors, strict=True):
            y = F.interpolate(y, scale_factor=factor, mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], dim=1))
        small = self.head(y)
        z = self.image_conv(y)
        p_def = 1.0 - torch.softmax(small, dim=1)[:, :1]
        pooled = torch.cat(
            [z.amax(dim=(2, 3)), z.mean(dim=(2, 3)), p_def.amax(dim=(2, 3)), p_def.mean(dim=(2, 3))], dim=1
        )
        logits = F.interpolate(small, scale_factor=self.final_factor, mode="bilinear", align_corners=False)
        return logits, self.image_fc(pooled)[:, 0]


def defect_probability(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(P(not background), class probabilities) of logits (N, C+1, H, W)."""
    probs = torch.softmax(logits, dim=1)
    return 1.0 - probs[:, 0], probs


def part_scores(p_def: torch.Tensor, image_logit: torch.Tensor, rule: str, pool: int = SCORE_POOL) -> torch.Tensor:
    """Part scores (N,) from P(defect) maps (N, H, W) and image logits (N,) by a rule of SCORE_RULES."""
    pixel = (
        (F.avg_pool2d(p_def[:, None], pool, stride=1, padding=pool // 2) if pool > 1 else p_def)
        .amax(dim=(-2, -1))
        .flatten()
    )
    if rule == "pixel_max":
        return pixel
    head = torch.sigmoid(image_logit.float())
    return head if rule == "head" else 0.5 * (pixel + head)


class SegmentationInspector(Inspector):
    # On CUDA the network stays fp32: on 114 held-out ball-screw parts (H200) fp16 moved scores by up
    # to 7.5e-3 where the closest score lay 1.3e-3 from a threshold, fp32 by 4.8e-7, for 0.8 ms more
    # (7.8 against 8.6 ms a part). docs/model_results.md, CUDA.
    CUDA_HALF = False

    def __init__(
        self, info: ModelInfo, meta: dict[str, Any], state: dict[str, torch.Tensor], device: str, backend: str = "torch"
    ) -> None:
        self.info = info
        self.device = torch.device(device)
        self.input = InputSpec.from_meta(meta, info.name)
        backbone.check(meta, info.name)
        self.rule = meta.get("score", "pixel_max")
        if self.rule not in SCORE_RULES:
            raise ModelError(
                f"Model {info.name} asks for part score {self.rule!r}, not one of {', '.join(SCORE_RULES)}."
            )
        self.score_pool = meta.get("score_pool", LEGACY_SCORE_POOL)
        if not isinstance(self.score_pool, int) or self.score_pool < 1 or self.score_pool % 2 == 0:
            raise ModelError(
                f"Model {info.name} asks for a score average over {self.score_pool!r} pixels; "
                "it must be an odd whole number."
            )
        self.net = UNet(len(info.classes), pretrained=False, arch=meta.get("arch"))
        try:
            self.net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
            # The first problem, not the "Error(s) in" header.
            first = (lines[1] if len(lines) > 1 else lines[0])[:200].rstrip(".")
            raise ModelError(
                f"Model {info.name} weights do not fit a {len(info.classes)}-class U-Net ({first})."
            ) from exc
        self.runtime = Runtime(self.net, self.input.example(), backend=backend, device=device, half=self.CUDA_HALF)
        self.input_batch = InputBatch()  # forward's reused input batches (forward runs on one thread)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        return self.input.tensor(image)

    @torch.inference_mode()
    def forward(self, inputs: list[torch.Tensor]) -> list[tuple[float, np.ndarray, np.ndarray]]:
        """(part score, P(defect) map, class probabilities) at the working resolution, one per
        preprocessed view, in order; each group of equal shapes in one network call."""
        out: list[tuple[float, np.ndarray, np.ndarray]] = [(0.0, np.empty(0), np.empty(0))] * len(inputs)
        for idx in shape_groups(inputs):
            logits, image_logit = self.runtime(self.input_batch([inputs[i] for i in idx]))
            p_def, probs = defect_probability(logits)
            scores = part_scores(p_def, image_logit, self.rule, self.score_pool).cpu().numpy()
            maps, class_probs = p_def.cpu().numpy(), probs.cpu().numpy()
            for k, i in enumerate(idx):
                out[i] = (float(scores[k]), maps[k], class_probs[k])
        return out

    def finish(self, raw: tuple[float, np.ndarray, np.ndarray], image_shape: tuple[int, ...]) -> Prediction:
        """One view's score and maps -> image-sized map, mask and classes (NumPy and OpenCV only)."""
        score, p_def, probs = raw
        return seg_prediction(score, p_def, probs, image_shape, self.info)

    def infer(self, batch: torch.Tensor, image_shape: tuple[int, ...]) -> Prediction:
        return self.finish(self.forward([batch])[0], image_shape)


def seg_prediction(
    score: float, p_def: np.ndarray, probs: np.ndarray, image_shape: tuple[int, ...], info: ModelInfo
) -> Prediction:
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
