"""Train the supervised U-Net from pixel masks: augmentation suited to parts, class-balanced loss,
early stopping on a group-aware validation split whose good parts also calibrate the thresholds."""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models import backbone
from models.calibration import calibrate
from models.datasets import Sample, fingerprint, group_holdout, read_image, read_mask
from models.errors import ModelError
from models.features import Size, input_size, shrink, size_meta
from models.metrics import auroc
from models.segmentation import (
    DEFAULT_ARCH,
    KIND,
    SCORE_POOL,
    SCORE_RULES,
    UNet,
    decoder_block,
    defect_probability,
    part_scores,
)

Progress = Callable[[str, int, int], None]
STEPS_PER_EPOCH = 40  # validation (and early stopping) at least this often


@dataclasses.dataclass(frozen=True)
class SegConfig:
    size: Size = (256, 256)  # working (height, width), multiples of 32; or a scale factor (then crops are needed)
    crop: tuple[int, int] | None = None  # train on crops of this size (defects are local; much cheaper)
    color: bool = True
    epochs: int = 60
    time_limit_s: float = 600.0
    batch_size: int = 8
    lr: float = 1e-3
    encoder_lr: float = 3e-4
    patience: int = 8
    validation_fraction: float = 0.15
    defect_share: float = 0.5  # share of defective parts in each batch
    false_reject: float = 0.01
    review_false_reject: float = 0.05
    seed: int = 0
    arch: tuple[tuple[int, ...], tuple[int, ...]] = (tuple(DEFAULT_ARCH["taps"]), tuple(DEFAULT_ARCH["widths"]))
    decoder_block: str = "conv"  # models.segmentation.BLOCKS: 3x3 convolutions, or separable (faster on the CPU)
    # The stem and this many first MBConv blocks keep their ImageNet weights. 11: only the stride-32
    # blocks, the decoder and the heads learn; cross-validated better than 3 on both datasets
    # (docs/model_results.md): a few training groups are not enough to retrain the encoder.
    frozen_blocks: int = 11
    ema_decay: float = (
        0.99  # validation scores (and the package keeps) this moving average of the weights; 0: the raw weights
    )
    score: str = "mean"  # part score rule, one of models.segmentation.SCORE_RULES
    image_loss_weight: float = 0.5


def _prepare(samples: Sequence[Sample], idx: Sequence[int], cfg: SegConfig, classes: Sequence[str]) -> tuple[Any, Any]:
    """Images as uint8 (3, h, w) and class-index targets (h, w) at each image's working size (as
    InputSpec gives it at inference). A fixed size gives stacked tensors (N, 3, H, W) / (N, H, W);
    a scale factor gives lists, each image at least the crop size (mirrored at its borders)."""
    import cv2

    images, targets = [], []
    for i in idx:
        s = samples[i]
        img = read_image(s.image, cfg.color)
        mask = read_mask(s, img.shape[:2])
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        h, w = input_size(img.shape[0], img.shape[1], cfg.size, 32)
        img = shrink(img, w, h)
        target = np.zeros((h, w), np.uint8)
        if s.is_defect and mask.any():
            target[cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0] = (
                classes.index(s.cls) + 1
            )
        if cfg.crop is not None and (h < cfg.crop[0] or w < cfg.crop[1]):
            pad = (0, max(0, cfg.crop[0] - h), 0, max(0, cfg.crop[1] - w))
            img = cv2.copyMakeBorder(img, *pad, cv2.BORDER_REFLECT)
            target = cv2.copyMakeBorder(target, *pad, cv2.BORDER_REFLECT)
        images.append(torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1))
        targets.append(torch.from_numpy(target))
    if isinstance(cfg.size, tuple):
        return torch.stack(images), torch.stack(targets)
    return images, targets


def _normalize(x: torch.Tensor) -> torch.Tensor:
    m = torch.tensor(backbone.IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(backbone.IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def _augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Flips, 180-degree (and, for square inputs, 90-degree) turns, brightness and contrast."""
    if torch.rand(1, generator=gen) < 0.5:
        x, y = x.flip(-1), y.flip(-1)
    if torch.rand(1, generator=gen) < 0.5:
        x, y = x.flip(-2), y.flip(-2)
    if x.shape[-1] == x.shape[-2] and torch.rand(1, generator=gen) < 0.5:
        x, y = x.rot90(1, (-2, -1)), y.rot90(1, (-2, -1))
    n = x.shape[0]
    contrast = 1.0 + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.4
    bright = (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.2
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * contrast + mean + bright).clamp(0, 1), y


def _crop(
    x: Sequence[torch.Tensor], y: Sequence[torch.Tensor], size: tuple[int, int], gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One crop per sample (images may differ in size); on a defective sample the crop holds a
    defect pixel 4 times in 5."""
    ch, cw = size
    xs, ys = [], []
    for k in range(len(x)):
        h, w = y[k].shape
        defect = torch.nonzero(y[k])
        if len(defect) and torch.rand(1, generator=gen) < 0.8:
            cy, cx = defect[int(torch.randint(len(defect), (1,), generator=gen))].tolist()
            top = min(max(0, cy - int(torch.randint(ch, (1,), generator=gen))), h - ch)
            left = min(max(0, cx - int(torch.randint(cw, (1,), generator=gen))), w - cw)
        else:
            top = int(torch.randint(h - ch + 1, (1,), generator=gen))
            left = int(torch.randint(w - cw + 1, (1,), generator=gen))
        xs.append(x[k][:, top : top + ch, left : left + cw])
        ys.append(y[k][top : top + ch, left : left + cw])
    return torch.stack(xs), torch.stack(ys)


class WeightAverage:
    """An exponential moving average of a network's weights (integer buffers copied), as timm's
    ModelEmaV2 keeps it. `net` is the averaged network; with `decay` 0 it is the live one."""

    def __init__(self, live: torch.nn.Module, decay: float) -> None:
        if not 0 <= decay < 1:
            raise ModelError(f"The weight average's decay must be at least 0 and below 1, not {decay}.")
        self.decay = decay
        self.net = copy.deepcopy(live) if decay > 0 else live
        self._pairs = list(zip(self.net.state_dict().values(), live.state_dict().values())) if decay > 0 else []

    @torch.no_grad()
    def update(self, step: int) -> None:
        """After optimizer step `step` (from 1): the average starts short, not at the untrained weights."""
        decay = min(self.decay, (1 + step) / (10 + step))
        for avg, live in self._pairs:
            if avg.dtype.is_floating_point:
                avg.lerp_(live, 1 - decay)
            else:
                avg.copy_(live)


def param_groups(net: UNet, cfg: SegConfig) -> list[dict[str, Any]]:
    """Optimizer groups: the encoder's trainable weights at `encoder_lr`, every other weight (decoder,
    pixel head, image head) at `lr`. Every trainable parameter is in exactly one group."""
    encoder = [p for p in net.encoder.parameters() if p.requires_grad]
    mine = {id(p) for p in net.encoder.parameters()}
    rest = [p for p in net.parameters() if p.requires_grad and id(p) not in mine]
    return [{"params": encoder, "lr": cfg.encoder_lr}, {"params": rest, "lr": cfg.lr}]


def _class_weights(targets: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse square-root pixel frequency, background 1, capped at 50."""
    counts = torch.bincount(targets.flatten().long(), minlength=n + 1).double().clamp(min=1)
    w = torch.sqrt(counts[0] / counts).clamp(1.0, 50.0)
    return w.float()


def _loss(
    logits: torch.Tensor,
    image_logit: torch.Tensor,
    y: torch.Tensor,
    defective: torch.Tensor,
    weights: torch.Tensor,
    image_weight: float,
) -> torch.Tensor:
    """Class-weighted cross entropy + dice on the pixels, binary cross entropy on the part label."""
    ce = F.cross_entropy(logits, y.long(), weight=weights)
    p_def, _ = defect_probability(logits)
    t = (y > 0).float()
    inter = (p_def * t).sum()
    dice = 1 - (2 * inter + 1) / (p_def.sum() + t.sum() + 1)
    return ce + dice + image_weight * F.binary_cross_entropy_with_logits(image_logit, defective)


@torch.inference_mode()
def _scores(net: UNet, images: torch.Tensor | list[torch.Tensor], rule: str, batch: int = 16) -> np.ndarray:
    """Part scores; a list of images of different sizes is scored one by one, as on the line."""
    net.eval()
    device = next(net.parameters()).device
    out = []
    step = 1 if isinstance(images, list) else batch
    for i in range(0, len(images), step):
        chunk = images[i][None] if isinstance(images, list) else images[i : i + step]
        x = _normalize(chunk.to(device).float() / 255).contiguous(memory_format=torch.channels_last)
        logits, image_logit = net(x)
        out.append(part_scores(defect_probability(logits)[0], image_logit, rule).cpu())
    return torch.cat(out).numpy()


def train_segmentation(
    samples: Sequence[Sample],
    indices: Sequence[int],
    cfg: SegConfig,
    *,
    name: str,
    version: str = "1",
    device: str = "cpu",
    progress: Progress | None = None,
    init: dict[str, torch.Tensor] | None = None,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Metadata and state dict (on the CPU) of a U-Net trained on `indices`, on `device` (cpu or
    cuda), starting from every tensor of `init` that fits this network when given (a parent model:
    all but its class heads when the classes changed).
    Batches are drawn, cropped and augmented on the CPU from one seeded generator, so both
    devices see the same batches."""
    fixed = isinstance(cfg.size, tuple)
    if (fixed and any(v % 32 for v in cfg.size)) or (cfg.crop is not None and any(v % 32 for v in cfg.crop)):
        raise ModelError(f"Segmentation sizes must be multiples of 32, not {cfg.size} / {cfg.crop}.")
    if not fixed and (cfg.crop is None or not isinstance(cfg.size, float) or cfg.size <= 0):
        raise ModelError("A segmentation model at a scale factor trains on crops: give both a scale and a crop size.")
    if cfg.score not in SCORE_RULES:
        raise ModelError(f"Part score rule {cfg.score!r} is not one of {', '.join(SCORE_RULES)}.")
    arch = {"taps": list(cfg.arch[0]), "widths": list(cfg.arch[1]), "block": cfg.decoder_block}
    decoder_block(arch)  # a bad block is an error now, not after the images are prepared
    if not 0 <= cfg.frozen_blocks <= cfg.arch[0][-1]:
        raise ModelError(
            f"Frozen encoder blocks must be between 0 and {cfg.arch[0][-1]} (the deepest tap), not {cfg.frozen_blocks}."
        )
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    classes = sorted({samples[i].cls for i in indices if samples[i].is_defect})
    if not classes:
        raise ModelError("Training a segmentation model needs defective parts with masks; this dataset has none.")
    fit_idx, val_idx = group_holdout(samples, indices, cfg.validation_fraction, seed=cfg.seed, both_labels=True)
    val_labels = np.array([samples[i].is_defect for i in val_idx])
    if val_labels.all() or not val_labels.any():
        raise ModelError(
            "The group-aware validation split holds no good or no defective parts; the dataset needs more groups."
        )
    x_fit, y_fit = _prepare(samples, fit_idx, cfg, classes)
    x_val, _ = _prepare(samples, val_idx, cfg, classes)
    dev = torch.device(device)
    weights = _class_weights(torch.cat([t.flatten() for t in y_fit]), len(classes)).to(dev)
    defect_rows = torch.tensor([i for i, k in enumerate(fit_idx) if samples[k].is_defect], dtype=torch.long)
    good_rows = torch.tensor([i for i, k in enumerate(fit_idx) if not samples[k].is_defect], dtype=torch.long)
    if not len(defect_rows) or not len(good_rows):
        raise ModelError(
            "After the validation split no good or no defective part is left to train on; the dataset needs defects in more groups."
        )
    net = UNet(len(classes), arch=arch).to(dev).to(memory_format=torch.channels_last)
    started_from = 0
    if init is not None:  # every tensor that fits (all but the class heads when the classes changed)
        own = net.state_dict()
        fitting = {k: v for k, v in init.items() if k in own and own[k].shape == v.shape}
        if not fitting:
            raise ModelError("The weights to start from do not fit this U-Net.")
        net.load_state_dict(fitting, strict=False)
        started_from = len(fitting)
    # The first `frozen_blocks` blocks keep their ImageNet weights (and batch-norm statistics):
    # generic edges and textures, and most of the backward cost on a CPU. Keeping them frozen
    # keeps a model trained on a few sequences or tile groups from fitting those.
    frozen = [net.encoder.stem, *net.encoder.blocks[: cfg.frozen_blocks]]
    fit_defective = torch.tensor([float(samples[k].is_defect) for k in fit_idx])
    for module in frozen:
        module.requires_grad_(False)
    opt = torch.optim.AdamW(param_groups(net, cfg), weight_decay=1e-4)
    steps_per_epoch = max(1, min(STEPS_PER_EPOCH, math.ceil(len(fit_idx) / cfg.batch_size)))
    total_steps = cfg.epochs * steps_per_epoch
    step = 0
    t0 = time.monotonic()

    def lr_factor(_: int) -> float:
        """Warm-up, then cosine decay over the training budget: steps or time, whichever runs out first."""
        frac = max(step / total_steps, (time.monotonic() - t0) / cfg.time_limit_s)
        return min(1.0, frac / 0.03) if frac < 0.03 else 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    # A moving average of the weights (as in timm's ModelEmaV2) is what validation scores and the
    # package keeps: the raw weights' validation AUROC jumps by up to 0.05 from epoch to epoch, so
    # the chosen epoch was as much luck as merit.
    average = WeightAverage(net, cfg.ema_decay)
    best = (-1.0, 0)
    best_state: dict[str, torch.Tensor] = {}
    history = []
    n_def = max(1, round(cfg.batch_size * cfg.defect_share))
    for epoch in range(cfg.epochs):
        net.train()
        for module in frozen:
            module.eval()
        total = 0.0
        for _ in range(steps_per_epoch):
            rows = torch.cat(
                [
                    defect_rows[torch.randint(len(defect_rows), (n_def,), generator=gen)],
                    good_rows[torch.randint(len(good_rows), (cfg.batch_size - n_def,), generator=gen)],
                ]
            )
            if fixed:
                x, y, defective = x_fit[rows], y_fit[rows], fit_defective[rows]
            else:
                x, y, defective = [x_fit[r] for r in rows], [y_fit[r] for r in rows], fit_defective[rows]
            if cfg.crop is not None:
                x, y = _crop(x, y, cfg.crop, gen)
                defective = (y.flatten(1) > 0).any(1).float()  # a crop is defective if it holds the defect
            x, y = _augment(x.float() / 255, y, gen)
            x, y, defective = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True), defective.to(dev)
            logits, image_logit = net(_normalize(x).contiguous(memory_format=torch.channels_last))
            loss = _loss(logits, image_logit, y, defective, weights, cfg.image_loss_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            sched.step()
            total += float(loss.detach())
            average.update(step)
        val_auroc = auroc(val_labels, _scores(average.net, x_val, cfg.score))
        history.append(
            {"epoch": epoch + 1, "loss": round(total / steps_per_epoch, 4), "val_image_auroc": round(val_auroc, 4)}
        )
        if progress:
            progress(f"epoch loss {total / steps_per_epoch:.3f} val AUROC {val_auroc:.3f}", epoch + 1, cfg.epochs)
        if val_auroc >= best[0]:  # a tie goes to the later, longer-trained epoch
            best = (val_auroc, epoch + 1)
            best_state = copy.deepcopy(average.net.state_dict())
        if epoch + 1 - best[1] >= cfg.patience or time.monotonic() - t0 > cfg.time_limit_s or step >= total_steps:
            break
    net.load_state_dict(best_state)
    val_scores = _scores(net, x_val, cfg.score)
    meta: dict[str, Any] = {
        "kind": KIND,
        "name": name,
        "version": version,
        "backbone": {
            "name": backbone.NAME,
            "weights": backbone.WEIGHTS_PACKAGE,
            "weights_sha256": backbone.weights_sha256(),
            "taps": [],
        },
        "input": {
            **size_meta(cfg.size),
            "multiple": 32,
            "mean": list(backbone.IMAGENET_MEAN),
            "std": list(backbone.IMAGENET_STD),
            "color": "rgb" if cfg.color else "grey",
        },
        "tiling": "none: whole image at the input size",
        "arch": arch,
        "score": cfg.score,
        "score_pool": SCORE_POOL,
        "classes": classes,
        "thresholds": calibrate(
            val_scores[~val_labels], false_reject=cfg.false_reject, review_false_reject=cfg.review_false_reject
        ),
        "calibration": {
            "good_parts": int((~val_labels).sum()),
            "groups": len({samples[i].group for i in val_idx}),
            "false_reject_target": cfg.false_reject,
            "review_false_reject": cfg.review_false_reject,
            "good_scores": sorted(round(float(v), 6) for v in val_scores[~val_labels]),
        },
        "training": {
            "parts": len(fit_idx),
            "defective": int(len(defect_rows)),
            "groups": len({samples[i].group for i in fit_idx}),
            "epochs_run": len(history),
            "best_epoch": best[1],
            "history": history,
            "seed": cfg.seed,
            "weight_average_decay": cfg.ema_decay,
            "frozen_blocks": cfg.frozen_blocks,
            "tensors_from_init": started_from,
            "class_weights": [round(float(w), 3) for w in weights],
            "seconds": round(time.monotonic() - t0, 1),
            "fingerprint": fingerprint(samples[i].image for i in fit_idx),
        },
        "metrics": {"validation_image_auroc": round(best[0], 4)},
    }
    return meta, {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
