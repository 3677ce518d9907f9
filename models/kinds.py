"""The model kinds this program can load: a package's `kind` -> what builds its Inspector.

The registry imports the kinds; a kind never imports the registry, nor `models.package`, which
consults it. Data flows one way: package (file format) -> kinds (which model) -> the kind's module
(the network and its inference). A new kind is one more line in `KINDS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol

import torch

from models.base import Inspector, ModelInfo
from models.patchcore import KIND as PATCHCORE
from models.patchcore import PatchCoreInspector
from models.segmentation import KIND as SEGMENTATION
from models.segmentation import SegmentationInspector


class KindFactory(Protocol):
    """Builds a ready Inspector from a package's identity, metadata and weights, on `device` with
    `backend` (models.runtime); ModelError if they do not make a model of this kind."""

    def __call__(
        self, info: ModelInfo, meta: dict[str, Any], state: dict[str, torch.Tensor], device: str, backend: str
    ) -> Inspector: ...


KINDS: Mapping[str, KindFactory] = MappingProxyType(
    {
        PATCHCORE: PatchCoreInspector,
        SEGMENTATION: SegmentationInspector,
    }
)
