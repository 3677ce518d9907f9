"""Patch features shared by the anomaly models: image -> normalized tensor -> pretrained mid-level
features, averaged over 3x3 neighbourhoods (PatchCore's locally aware patch features)."""

from __future__ import annotations

import dataclasses
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from models import backbone
from models.errors import ModelError

DEFAULT_TAPS = (4, 10)  # EfficientNet-Lite0 blocks: stride 8 (40 ch) and stride 16 (112 ch)


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
        # Inputs are multiples of 16, so each deeper tap is an exact power-of-two smaller. A scale
        # factor (not a traced size) keeps the ONNX export valid for every input size.
        up = [feats[0]]
        for f, stride in zip(feats[1:], self.extractor.strides[1:]):
            up.append(F.interpolate(f, scale_factor=stride // self.extractor.strides[0], mode="bilinear", align_corners=False))
        return F.avg_pool2d(torch.cat(up, dim=1), 3, stride=1, padding=1)


def to_tensor(image: np.ndarray, size: int | tuple[int, int], mean: tuple[float, ...], std: tuple[float, ...],
              grey: bool = False) -> torch.Tensor:
    """uint8 (H, W) or (H, W, 3) RGB -> normalized float tensor (1, 3, h, w). `size` is either the
    long side (aspect kept, rounded to 16) or a fixed (height, width). A model trained on grey
    images (`grey`) sees colour images as grey, replicated to three channels."""
    if grey and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    h, w = size if isinstance(size, tuple) else input_size(image.shape[0], image.shape[1], size)
    resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(resized).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(mean).view(3, 1, 1)
    s = torch.tensor(std).view(3, 1, 1)
    return ((x - m) / s).unsqueeze(0)


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """How a model package wants its images: size (long side, or fixed height and width),
    normalization and colour. Read from the package's `input` metadata."""

    size: int | tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    grey: bool

    @classmethod
    def from_meta(cls, meta: dict[str, Any], model_name: str) -> InputSpec:
        try:
            inp = meta["input"]
            size: int | tuple[int, int] = (int(inp["height"]), int(inp["width"])) if "height" in inp else int(inp["long_side"])
            return cls(size, tuple(float(v) for v in inp["mean"]), tuple(float(v) for v in inp["std"]), inp.get("color") == "grey")
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"Model {model_name} has incomplete input metadata ({exc}).") from exc

    def tensor(self, image: np.ndarray) -> torch.Tensor:
        return to_tensor(image, self.size, self.mean, self.std, grey=self.grey)

    def example(self) -> torch.Tensor:
        """A blank input of the working size (a square one for long-side models), for ONNX export."""
        h, w = self.size if isinstance(self.size, tuple) else (self.size, self.size)
        return torch.zeros(1, 3, h, w)
