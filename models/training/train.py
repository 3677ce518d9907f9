"""Train a model package from a dataset folder: the one entry point of `lepton-inspect train`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from models.datasets import Dataset, load_dataset
from models.errors import ModelError
from models.features import Size
from models.package import resolve_device, save_package
from models.training.anomaly import AnomalyConfig, train_patchcore
from models.training.segmentation import SegConfig, train_segmentation

Progress = Callable[[str, int, int], None]
KINDS = ("anomaly", "segmentation")
SCALE_CROP = (160, 160)  # segmentation crops when the working size is a scale factor


def training_indices(ds: Dataset, kind: str) -> list[int]:
    """All parts of a project dataset; for MVTec, anomaly models learn from train/ only and
    segmentation (which needs defects) from everything."""
    if ds.format == "mvtec" and kind == "anomaly":
        return [i for i, s in enumerate(ds.samples) if s.split == "train"]
    return list(range(len(ds.samples)))


def train_model(
    ds: Dataset,
    indices: Sequence[int],
    kind: str,
    *,
    size: Size | None = None,
    color: bool = True,
    epochs: int | None = None,
    time_limit_s: float | None = None,
    crop: tuple[int, int] | None = None,
    pooling: str | None = None,
    coreset: int | None = None,
    frozen_blocks: int | None = None,
    decoder: str | None = None,
    seed: int = 0,
    false_reject: float = 0.01,
    name: str,
    device: str = "auto",
    progress: Progress | None = None,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Train and calibrate a model of `kind` on the parts `indices` of a dataset (all of them for
    `lepton-inspect train`, the training folds in cross-validation): metadata and state dict (on
    the CPU). `device`: auto (a CUDA GPU when there is one), cpu or cuda."""
    if kind not in KINDS:
        raise ModelError(f"Kind must be one of {', '.join(KINDS)}.")
    device = resolve_device(device)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = False  # the same convolution algorithms from run to run:
        torch.backends.cudnn.deterministic = True  # a seed repeats a CUDA training as closely as it can
    doubtful = sum(ds.samples[i].doubtful for i in indices)
    # A good label that may hide a defect teaches nothing true.
    indices = [i for i in indices if not ds.samples[i].doubtful]
    torch.manual_seed(seed)
    common: dict[str, Any] = {"color": color, "seed": seed, "false_reject": false_reject}
    if kind == "anomaly":
        a_cfg = _anomaly_config(
            common, size=size, pooling=pooling, coreset=coreset, frozen_blocks=frozen_blocks, decoder=decoder
        )
        meta, state = train_patchcore(ds.samples, indices, a_cfg, name=name, device=device, progress=progress)
    else:
        s_cfg = _segmentation_config(
            common,
            size=size,
            crop=crop,
            epochs=epochs,
            time_limit_s=time_limit_s,
            frozen_blocks=frozen_blocks,
            decoder=decoder,
            pooling=pooling,
            coreset=coreset,
        )
        meta, state = train_segmentation(ds.samples, indices, s_cfg, name=name, device=device, progress=progress)
    meta["training"]["doubtful_goods_left_out"] = doubtful
    meta["training"]["device"] = (
        torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"
    )
    return meta, state


def _anomaly_config(
    common: dict[str, Any],
    *,
    size: Size | None,
    pooling: str | None,
    coreset: int | None,
    frozen_blocks: int | None,
    decoder: str | None,
) -> AnomalyConfig:
    """`common` options (colour, seed, false-reject target) and those given, AnomalyConfig's
    defaults for the rest; ModelError if a segmentation option is given."""
    if frozen_blocks is not None or decoder is not None:
        raise ModelError(
            "Frozen encoder blocks and the decoder are segmentation options; "
            "the anomaly model's backbone is never trained."
        )
    kw = dict(common)
    for key, value in (("size", size), ("pooling", pooling), ("coreset_size", coreset)):
        if value is not None:
            kw[key] = value
    return AnomalyConfig(**kw)


def _segmentation_config(
    common: dict[str, Any],
    *,
    size: Size | None,
    crop: tuple[int, int] | None,
    epochs: int | None,
    time_limit_s: float | None,
    frozen_blocks: int | None,
    decoder: str | None,
    pooling: str | None,
    coreset: int | None,
) -> SegConfig:
    """`common` options and those given, SegConfig's defaults for the rest: a long side becomes a
    square size, a scale factor trains on crops of SCALE_CROP unless a crop is given. ModelError
    if an anomaly-model option is given."""
    if pooling is not None or coreset is not None:
        raise ModelError(
            "Patch pooling and the memory bank size are anomaly-model options; "
            "a segmentation model learns its own features."
        )
    kw = dict(common)
    if frozen_blocks is not None:
        kw["frozen_blocks"] = frozen_blocks
    if decoder is not None:
        kw["decoder_block"] = decoder
    if crop is not None:
        kw["crop"] = crop
    elif isinstance(size, float):
        kw["crop"] = SCALE_CROP  # images of different sizes train on crops of one size
    if size is not None:
        kw["size"] = (size, size) if isinstance(size, int) else size
    if epochs:
        kw["epochs"] = epochs
    if time_limit_s:
        kw["time_limit_s"] = time_limit_s
    return SegConfig(**kw)


def train_package(
    dataset: Path,
    kind: str,
    out: Path,
    *,
    threads: int | None = None,
    name: str | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> tuple[str, dict[str, Any]]:
    """Train on a whole dataset folder, calibrate and save a package; returns its sha256 and
    metadata. `options` are those of `train_model`."""
    if kind not in KINDS:
        raise ModelError(f"Kind must be one of {', '.join(KINDS)}.")
    if threads:
        torch.set_num_threads(threads)
    ds = load_dataset(dataset)
    meta, state = train_model(
        ds, training_indices(ds, kind), kind, name=name or f"{dataset.name}-{kind}", progress=progress, **options
    )
    meta["training"]["dataset"] = str(dataset)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_package(out, meta, state), meta
