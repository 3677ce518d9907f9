"""Train a PatchCore package from the good parts of a dataset, calibrated on other good parts."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch

import models.backbone as backbone
from models.calibration import calibrate, false_reject_interval
from models.datasets import Sample, fingerprint, group_holdout, read_image
from models.errors import ModelError
from models.features import DEFAULT_TAPS, InputSpec, Size, size_meta
from models.package import build_inspector
from models.patchcore import KIND
from models.training.patchcore_fit import collect_patches, greedy_coreset

Progress = Callable[[str, int, int], None]


@dataclasses.dataclass(frozen=True)
class AnomalyConfig:
    size: Size = (256, 256)  # fixed (height, width), long side, or scale factor (models.features.input_size)
    color: bool = True
    taps: tuple[int, ...] = DEFAULT_TAPS
    pooling: str = "per_tap"  # models.features.POOLINGS
    coreset_size: int = 8192
    pool_cap: int = 100_000
    calibration_fraction: float = 0.2
    false_reject: float = 0.01
    review_false_reject: float = 0.05
    map_blur_sigma: float = 4.0
    # models.patchcore.MAP_AT: blur at the input size (cheap), or at the image size (packages before it).
    map_at: str = "input"
    standardize: bool = False  # same brightness and contrast for every image (varying lighting)
    seed: int = 0


def input_meta(cfg: AnomalyConfig) -> dict[str, Any]:
    return {
        **size_meta(cfg.size),
        "multiple": 16,
        "standardize": cfg.standardize,
        "mean": list(backbone.IMAGENET_MEAN),
        "std": list(backbone.IMAGENET_STD),
        "color": "rgb" if cfg.color else "grey",
    }


def train_patchcore(
    samples: Sequence[Sample],
    indices: Sequence[int],
    cfg: AnomalyConfig,
    *,
    name: str,
    version: str = "1",
    device: str = "cpu",
    progress: Progress | None = None,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Metadata and state dict of a PatchCore model trained on the good parts among `indices`
    (features, coreset and calibration on `device`); a group-aware share of those good parts is
    held back to calibrate the thresholds."""
    if cfg.coreset_size < 1:
        raise ModelError(f"The memory bank needs at least one row, not {cfg.coreset_size}.")
    torch.manual_seed(cfg.seed)
    good = [i for i in indices if not samples[i].is_defect]
    fit_idx, cal_idx = group_holdout(samples, good, cfg.calibration_fraction, seed=cfg.seed)
    if not fit_idx or not cal_idx:
        raise ModelError(
            "Training an anomaly model needs good parts of at least two groups "
            "(one to learn from, one to calibrate on)."
        )
    fit = [samples[i] for i in fit_idx]
    pool, chosen = _memory_bank(fit, cfg, name, device, progress)
    state = {"memory_bank": pool[chosen].contiguous()}
    meta = _metadata(cfg, name, version)
    cal = [samples[i] for i in cal_idx]
    meta["thresholds"], meta["calibration"] = _calibration(meta, state, cal, cfg, device, progress)
    meta["training"] = {
        "good_parts": len(fit),
        "groups": len({s.group for s in fit}),
        "patch_pool": int(pool.shape[0]),
        "memory_bank": int(chosen.numel()),
        "seed": cfg.seed,
        "fingerprint": fingerprint(s.image for s in fit),
    }
    return meta, state


def _memory_bank(
    fit: Sequence[Sample], cfg: AnomalyConfig, name: str, device: str, progress: Progress | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The pool of patch features of the good parts `fit` and the rows of its coreset (the bank)."""
    spec = InputSpec.from_meta({"input": input_meta(cfg)}, name)
    pool = collect_patches(
        (read_image(s.image, cfg.color) for s in fit),
        len(fit),
        spec,
        taps=cfg.taps,
        pooling=cfg.pooling,
        pool_cap=cfg.pool_cap,
        seed=cfg.seed,
        device=device,
        progress=progress,
    )
    return pool, greedy_coreset(pool, cfg.coreset_size, seed=cfg.seed, device=device, progress=progress)


def _metadata(cfg: AnomalyConfig, name: str, version: str) -> dict[str, Any]:
    """A package's metadata before calibration: thresholds that pass every part and draw no mask."""
    return {
        "kind": KIND,
        "name": name,
        "version": version,
        "backbone": {
            "name": backbone.NAME,
            "weights": backbone.WEIGHTS_PACKAGE,
            "weights_sha256": backbone.weights_sha256(),
            "taps": list(cfg.taps),
            "pooling": cfg.pooling,
        },
        "input": input_meta(cfg),
        "tiling": "none: whole image at the input size",
        "map_blur_sigma": cfg.map_blur_sigma,
        "map_at": cfg.map_at,
        "classes": ["anomaly"],
        "thresholds": {"ok_below": 0.0, "ng_at": 0.0, "pixel": float("inf")},
    }


def _calibration(
    meta: dict[str, Any],
    state: dict[str, torch.Tensor],
    cal: Sequence[Sample],
    cfg: AnomalyConfig,
    device: str,
    progress: Progress | None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Thresholds at the configured false-reject rates on the held-back good parts `cal`, as the
    provisional model scores them, and the `calibration` record that keeps their scores."""
    provisional = build_inspector(meta, state, device=device)
    cal_scores = []
    for k, s in enumerate(cal):
        cal_scores.append(provisional.predict(read_image(s.image, cfg.color)).score)
        if progress:
            progress("calibration", k + 1, len(cal))
    thresholds = calibrate(cal_scores, false_reject=cfg.false_reject, review_false_reject=cfg.review_false_reject)
    return thresholds, {
        "good_parts": len(cal),
        "groups": len({s.group for s in cal}),
        "false_reject_target": cfg.false_reject,
        "review_false_reject": cfg.review_false_reject,
        "good_scores": sorted(round(float(v), 6) for v in cal_scores),
        "false_reject": false_reject_interval(cal_scores, thresholds["ng_at"]),
    }
