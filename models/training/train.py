"""Train a model package from a dataset folder: the one entry point of `lepton-inspect train`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from models.errors import ModelError
from models.datasets import Dataset, load_dataset
from models.package import save_package

Progress = Callable[[str, int, int], None]
KINDS = ("anomaly", "segmentation")


def training_indices(ds: Dataset, kind: str) -> list[int]:
    """All parts of a project dataset; for MVTec, anomaly models learn from train/ only and
    segmentation (which needs defects) from everything."""
    if ds.format == "mvtec" and kind == "anomaly":
        return [i for i, s in enumerate(ds.samples) if s.split == "train"]
    return list(range(len(ds.samples)))


def train_package(dataset: Path, kind: str, out: Path, *, size: int | tuple[int, int] | None = None, color: bool = True,
                  epochs: int | None = None, time_limit_s: float | None = None, seed: int = 0, false_reject: float = 0.01,
                  name: str | None = None, threads: int | None = None, progress: Progress | None = None) -> tuple[str, dict[str, Any]]:
    """Train, calibrate and save a package; returns its sha256 and metadata."""
    if kind not in KINDS:
        raise ModelError(f"Kind must be one of {', '.join(KINDS)}.")
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    ds = load_dataset(dataset)
    idx = training_indices(ds, kind)
    name = name or f"{dataset.name}-{kind}"
    if kind == "anomaly":
        from models.training.anomaly import AnomalyConfig, train_patchcore

        cfg = AnomalyConfig(size=size or (256, 256), color=color, seed=seed, false_reject=false_reject)
        meta, state = train_patchcore(ds.samples, idx, cfg, name=name, progress=progress)
    else:
        from models.training.segmentation import SegConfig, train_segmentation

        seg_size = size if isinstance(size, tuple) else (size, size) if size else (256, 256)
        cfg_kw: dict[str, Any] = {"size": seg_size, "color": color, "seed": seed, "false_reject": false_reject}
        if epochs:
            cfg_kw["epochs"] = epochs
        if time_limit_s:
            cfg_kw["time_limit_s"] = time_limit_s
        meta, state = train_segmentation(ds.samples, idx, SegConfig(**cfg_kw), name=name, progress=progress)
    meta["training"]["dataset"] = str(dataset)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_package(out, meta, state), meta
