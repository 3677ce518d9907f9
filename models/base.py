"""The `Inspector` interface and the typed `Prediction` that crosses from models to inspection."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class DefectClass:
    """One defect class found in a part: its name, area in pixels and strongest score."""

    name: str
    area_px: int
    score: float


@dataclasses.dataclass(frozen=True, eq=False)
class Prediction:
    """What a model says of one image. Maps have the image's height and width."""

    score: float  # part score; higher is more defective, on the scale of the model's thresholds
    anomaly_map: np.ndarray  # float32 (H, W)
    defect_mask: np.ndarray  # bool (H, W)
    classes: tuple[DefectClass, ...]


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Score thresholds: below `ok_below` OK, at or above `ng_at` NG, between them REVIEW;
    `pixel` turns the anomaly map into the defect mask."""

    ok_below: float
    ng_at: float
    pixel: float

    def __post_init__(self) -> None:
        if not self.ok_below <= self.ng_at:
            raise ValueError(f"ok_below ({self.ok_below}) must not exceed ng_at ({self.ng_at})")


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Identity of a loaded model package, as recorded with every inspection."""

    name: str
    version: str
    kind: str
    sha256: str
    thresholds: Thresholds
    classes: tuple[str, ...]
    metadata: dict[str, Any]


class Inspector(abc.ABC):
    """A loaded model. `predict` = `infer(preprocess(image), image.shape)`; the runner calls the
    two halves itself to time them. Not thread-safe: one inspection worker uses it."""

    info: ModelInfo

    @abc.abstractmethod
    def preprocess(self, image: np.ndarray) -> Any: ...

    @abc.abstractmethod
    def infer(self, batch: Any, image_shape: tuple[int, ...]) -> Prediction: ...

    def predict(self, image: np.ndarray) -> Prediction:
        return self.infer(self.preprocess(image), image.shape)

    def warmup(self, shape: tuple[int, ...] = (256, 256, 3)) -> None:
        """Run once on a blank image so the first part is not slow."""
        self.predict(np.zeros(shape, dtype=np.uint8))
