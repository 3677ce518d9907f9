"""The `Inspector` interface and the typed `Prediction` that crosses from models to inspection."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import numpy as np

from models.errors import ModelError

# The largest image this program reads or inspects: a file whose header declares more is refused
# before it is decoded (models.datasets), so a damaged or hostile file cannot make it allocate
# gigabytes. A 100-megapixel RGB image already takes 300 MB; the line's cameras give far less.
MAX_IMAGE_PIXELS = 100_000_000


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


def model_image(image: Any) -> np.ndarray:
    """An image as every model takes it: uint8, grey (H, W) or RGB (H, W, 3), contiguous.

    The wrong depth or layout is converted where the meaning is clear - 16-bit scaled to 8 (the
    high byte), bool to 0/255, (H, W, 1) to grey, grey + alpha to grey, RGBA to RGB - and refused
    with one sentence (ModelError) where it is not: float or signed images, other shapes, an empty
    image, more than MAX_IMAGE_PIXELS pixels. The size is the model's preprocessing's
    business (it resizes to the working size)."""
    if not isinstance(image, np.ndarray):
        raise ModelError(f"A model takes an image array, not {type(image).__name__}.")
    if image.ndim == 3 and image.shape[2] in (1, 2):
        image = image[:, :, 0]  # grey, or grey + alpha
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]  # RGBA: the alpha plane is not part of the picture
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ModelError(f"A model takes a grey (H, W) or colour (H, W, 3) image, not one of shape {image.shape}.")
    if image.size == 0:
        raise ModelError(f"A model cannot inspect an empty image (shape {image.shape}).")
    if image.shape[0] * image.shape[1] > MAX_IMAGE_PIXELS:
        raise ModelError(
            f"An image of {image.shape[1]} x {image.shape[0]} pixels is more than the "
            f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels a model inspects."
        )
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    elif image.dtype != np.uint8:
        raise ModelError(f"A model takes 8- or 16-bit images, not {image.dtype} ones.")
    return np.ascontiguousarray(image)


class Inspector(abc.ABC):
    """A loaded model. `predict` = `infer(preprocess(image), image.shape)`; the runner calls the
    halves itself to time them and to pipeline them. Not thread-safe as a whole: one inspection
    worker uses it; in a pipeline `preprocess` and `finish` may run on other threads than
    `forward`, but `forward` always on one thread.

    The pipelined path: `forward([preprocess(a), preprocess(b), ...])` runs the network on several
    views at once and gives one raw output per view; `finish(raw, image.shape)` turns one of them
    into the Prediction `predict` gives, with NumPy and OpenCV only, so that it can run while the
    next `forward` does. A kind that does not split its work (the test fakes) keeps the defaults:
    `forward` passes the inputs through and `finish` is `infer`."""

    info: ModelInfo

    @abc.abstractmethod
    def preprocess(self, image: np.ndarray) -> Any: ...

    @abc.abstractmethod
    def infer(self, batch: Any, image_shape: tuple[int, ...]) -> Prediction: ...

    def forward(self, inputs: list[Any]) -> list[Any]:
        """The network on preprocessed views, equal shapes batched together: one raw output per
        input, in order. The default does no work (`finish` then does it all)."""
        return list(inputs)

    def finish(self, raw: Any, image_shape: tuple[int, ...]) -> Prediction:
        """One raw output of `forward` -> the Prediction for an image of `image_shape`."""
        return self.infer(raw, image_shape)

    def predict(self, image: np.ndarray) -> Prediction:
        return self.infer(self.preprocess(image), image.shape)

    def warmup(self, shape: tuple[int, ...] = (256, 256, 3)) -> None:
        """Run once on a blank image so the first part is not slow."""
        self.predict(np.zeros(shape, dtype=np.uint8))
