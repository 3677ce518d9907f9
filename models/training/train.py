"""Train a model package from a dataset folder: the one entry point of `lepton-inspect train`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from models.datasets import Dataset, load_dataset
from models.errors import ModelError
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


# How `--kind anomaly` starts a product from good parts: the U-Net trained on synthetic defects, or
# PatchCore's memory bank of good patches.
COLD_STARTS = ("synthetic", "patchcore")
DEFAULT_COLD_START = "patchcore"
SEGMENTATION_ONLY = ("crop", "epochs", "time_limit_s", "frozen_blocks", "decoder", "synthetic", "min_defect_px")


def train_model(
    ds: Dataset,
    indices: Sequence[int],
    kind: str,
    *,
    color: bool = True,
    seed: int = 0,
    false_reject: float = 0.01,
    cold_start: str | None = None,
    name: str,
    device: str = "auto",
    progress: Progress | None = None,
    **options: Any,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Train and calibrate a model of `kind` on the parts `indices` of a dataset (all of them for
    `lepton-inspect train`, the training folds in cross-validation): metadata and state dict (on
    the CPU). `device`: auto (a CUDA GPU when there is one), cpu or cuda. `cold_start` (anomaly
    only): one of COLD_STARTS. `options`, None where not given: size; crop, epochs, time_limit_s,
    frozen_blocks, decoder, synthetic, min_defect_px (the U-Net's); pooling, coreset (PatchCore's)."""
    if kind not in KINDS:
        raise ModelError(f"Kind must be one of {', '.join(KINDS)}.")
    if cold_start is not None and (kind != "anomaly" or cold_start not in COLD_STARTS):
        raise ModelError(f"A cold start is one of {', '.join(COLD_STARTS)}, for the anomaly kind only.")
    device = resolve_device(device)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = False  # the same convolution algorithms from run to run:
        torch.backends.cudnn.deterministic = True  # a seed repeats a CUDA training as closely as it can
    doubtful = sum(ds.samples[i].doubtful for i in indices)
    # A good label that may hide a defect teaches nothing true.
    indices = [i for i in indices if not ds.samples[i].doubtful]
    torch.manual_seed(seed)
    common: dict[str, Any] = {"color": color, "seed": seed, "false_reject": false_reject}
    given = {k: v for k, v in options.items() if v is not None}
    if kind == "anomaly" and (cold_start or DEFAULT_COLD_START) == "patchcore":
        a_cfg = _anomaly_config(common, given)
        meta, state = train_patchcore(ds.samples, indices, a_cfg, name=name, device=device, progress=progress)
    else:
        if kind == "anomaly":  # the synthetic cold start: good parts only, every defect drawn on them
            indices = [i for i in indices if not ds.samples[i].is_defect]
            given["synthetic"] = 1.0
        s_cfg = _segmentation_config(common, given)
        meta, state = train_segmentation(ds.samples, indices, s_cfg, name=name, device=device, progress=progress)
    meta["training"]["cold_start"] = (cold_start or DEFAULT_COLD_START) if kind == "anomaly" else None
    meta["training"]["doubtful_goods_left_out"] = doubtful
    meta["training"]["device"] = (
        torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"
    )
    return meta, state


def _anomaly_config(common: dict[str, Any], given: dict[str, Any]) -> AnomalyConfig:
    """`common` options (colour, seed, false-reject target) and those `given`, AnomalyConfig's
    defaults for the rest; ModelError if a U-Net option is given."""
    unknown = set(given) - {"size", "pooling", "coreset"}
    if unknown & set(SEGMENTATION_ONLY):
        raise ModelError(
            "Frozen encoder blocks, the decoder, crops, epochs and synthetic defects are U-Net options; "
            "PatchCore's backbone is never trained."
        )
    if unknown:
        raise ModelError(f"Unknown training options: {', '.join(sorted(unknown))}.")
    kw = dict(common)
    for key, value in (
        ("size", given.get("size")),
        ("pooling", given.get("pooling")),
        ("coreset_size", given.get("coreset")),
    ):
        if value is not None:
            kw[key] = value
    return AnomalyConfig(**kw)


def _segmentation_config(common: dict[str, Any], given: dict[str, Any]) -> SegConfig:
    """`common` options and those `given`, SegConfig's defaults for the rest: a long side becomes
    a square size, a scale factor trains on crops of SCALE_CROP unless a crop is given. ModelError
    if a PatchCore option is given."""
    if "pooling" in given or "coreset" in given:
        raise ModelError(
            "Patch pooling and the memory bank size are PatchCore options; "
            "a segmentation model learns its own features."
        )
    unknown = set(given) - {"size", *SEGMENTATION_ONLY}
    if unknown:
        raise ModelError(f"Unknown training options: {', '.join(sorted(unknown))}.")
    kw = dict(common)
    renamed = {"decoder": "decoder_block"}
    for key in ("frozen_blocks", "decoder", "crop", "epochs", "time_limit_s", "synthetic", "min_defect_px"):
        if key in given and (given[key] or key not in ("epochs", "time_limit_s")):  # (0 epochs or s: the default)
            kw[renamed.get(key, key)] = given[key]
    size = given.get("size")
    if "crop" not in given and isinstance(size, float):
        kw["crop"] = SCALE_CROP  # images of different sizes train on crops of one size
    if size is not None:
        kw["size"] = (size, size) if isinstance(size, int) else size
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
