"""Train the supervised U-Net from pixel masks: augmentation suited to parts, class-balanced loss,
early stopping on a group-aware validation split whose good parts also calibrate the thresholds."""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F

import models.backbone as backbone
from models.calibration import calibrate, false_reject_interval
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
from models.training import synthetic_defects

Progress = Callable[[str, int, int], None]
STEPS_PER_EPOCH = 40  # validation (and early stopping) at least this often
ANOMALY_CLASS = "anomaly"  # the class of synthetic defects: what no labelled class describes


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
    # Validation scores (and the package keeps) this moving average of the weights; 0: the raw weights.
    ema_decay: float = 0.99
    score: str = "mean"  # part score rule, one of models.segmentation.SCORE_RULES
    image_loss_weight: float = 0.5
    # Synthetic defects (models.training.synthetic_defects) on good parts, class ANOMALY_CLASS: the
    # share of each batch's defective slots they fill when real defects exist (0: none); with no
    # real defect in the data, any share above 0 fills them all (the good-parts-only cold start).
    synthetic: float = 0.0
    min_defect_px: int = 4  # the product's smallest defect, in pixels at the working size


# Parts at their working size: stacked (N, ...) at a fixed size, one tensor each at a scale factor.
Images = torch.Tensor | list[torch.Tensor]


def _prepare(
    samples: Sequence[Sample], idx: Sequence[int], cfg: SegConfig, classes: Sequence[str]
) -> tuple[Images, Images]:
    """Images as uint8 (3, h, w) and class-index targets (h, w) at each image's working size (as
    InputSpec gives it at inference). A fixed size gives stacked tensors (N, 3, H, W) / (N, H, W);
    a scale factor gives lists, each image at least the crop size (mirrored at its borders)."""
    images, targets = [], []
    for i in idx:
        image, target = _prepare_one(samples[i], cfg, classes)
        images.append(image)
        targets.append(target)
    if isinstance(cfg.size, tuple):
        return torch.stack(images), torch.stack(targets)
    return images, targets


def _prepare_one(s: Sample, cfg: SegConfig, classes: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """One part's image (3, h, w) and class-index target (h, w), see `_prepare`."""
    img = read_image(s.image, cfg.color)
    mask = read_mask(s, img.shape[:2])
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    h, w = input_size(img.shape[0], img.shape[1], cfg.size, 32)
    img = shrink(img, w, h)
    target: np.ndarray = np.zeros((h, w), np.uint8)
    if s.is_defect and mask.any():
        target[cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0] = (
            classes.index(s.cls) + 1
        )
    if cfg.crop is not None and (h < cfg.crop[0] or w < cfg.crop[1]):
        pad = (0, max(0, cfg.crop[0] - h), 0, max(0, cfg.crop[1] - w))
        img = cv2.copyMakeBorder(img, *pad, cv2.BORDER_REFLECT)
        target = cv2.copyMakeBorder(target, *pad, cv2.BORDER_REFLECT)
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1), torch.from_numpy(target)


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


def _crop(x: Images, y: Images, size: tuple[int, int], gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
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


ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)


class WeightAverage(Generic[ModuleT]):
    """An exponential moving average of a network's weights (integer buffers copied), as timm's
    ModelEmaV2 keeps it. `net` is the averaged network; with `decay` 0 it is the live one."""

    def __init__(self, live: ModuleT, decay: float) -> None:
        if not 0 <= decay < 1:
            raise ModelError(f"The weight average's decay must be at least 0 and below 1, not {decay}.")
        self.decay = decay
        self.net: ModuleT = copy.deepcopy(live) if decay > 0 else live
        # A deep copy has the same tensors in the same order.
        self._pairs = (
            list(zip(self.net.state_dict().values(), live.state_dict().values(), strict=True)) if decay > 0 else []
        )

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
def _scores(net: UNet, images: Images, rule: str, batch: int = 16) -> np.ndarray:
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
    arch = _architecture(cfg)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    parts = _split(samples, indices, cfg)
    dev = torch.device(device)
    net, started_from, frozen = _network(len(parts.classes), arch, cfg, init, dev)
    trainer = _Trainer(net, frozen, parts, cfg, dev, gen)
    fitted = _fit(trainer, parts, cfg, progress)
    net.load_state_dict(fitted.best_state)
    val_scores = _scores(net, parts.x_val, cfg.score)
    good_scores = val_scores[~parts.val_labels]
    thresholds = calibrate(good_scores, false_reject=cfg.false_reject, review_false_reject=cfg.review_false_reject)
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
        "input": _input_meta(cfg),
        "tiling": "none: whole image at the input size",
        "arch": arch,
        "score": cfg.score,
        "score_pool": SCORE_POOL,
        "classes": parts.classes,
        "thresholds": thresholds,
        "calibration": {
            "good_parts": int((~parts.val_labels).sum()),
            "groups": len({samples[i].group for i in parts.val_idx}),
            "false_reject_target": cfg.false_reject,
            "review_false_reject": cfg.review_false_reject,
            "good_scores": sorted(round(float(v), 6) for v in good_scores),
            "false_reject": false_reject_interval(good_scores, thresholds["ng_at"]),
        },
        "training": _training_record(samples, parts, cfg, trainer, fitted, started_from),
        "metrics": {"validation_image_auroc": round(fitted.best_auroc, 4)},
    }
    return meta, {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def _architecture(cfg: SegConfig) -> dict[str, Any]:
    """The `arch` metadata of the U-Net `cfg` asks for; ModelError with one sentence, before any
    image is read, if `cfg` cannot train."""
    size, crop = cfg.size, cfg.crop
    if (isinstance(size, tuple) and any(v % 32 for v in size)) or (crop is not None and any(v % 32 for v in crop)):
        raise ModelError(f"Segmentation sizes must be multiples of 32, not {size} / {crop}.")
    if not isinstance(size, tuple) and (crop is None or not isinstance(size, float) or size <= 0):
        raise ModelError("A segmentation model at a scale factor trains on crops: give both a scale and a crop size.")
    if cfg.score not in SCORE_RULES:
        raise ModelError(f"Part score rule {cfg.score!r} is not one of {', '.join(SCORE_RULES)}.")
    arch = {"taps": list(cfg.arch[0]), "widths": list(cfg.arch[1]), "block": cfg.decoder_block}
    decoder_block(arch)  # a bad block is an error now, not after the images are prepared
    if not 0 <= cfg.frozen_blocks <= cfg.arch[0][-1]:
        raise ModelError(
            f"Frozen encoder blocks must be between 0 and {cfg.arch[0][-1]} (the deepest tap), not {cfg.frozen_blocks}."
        )
    return arch


@dataclasses.dataclass(frozen=True)
class _Parts:
    """What a U-Net learns from and is validated on: the parts of a group-aware split, prepared."""

    classes: list[str]
    fit_idx: list[int]
    val_idx: list[int]
    x_fit: Images  # uint8 images
    y_fit: Images  # class-index targets
    fit_defective: torch.Tensor  # float (N,): 1 for a defective part
    defect_rows: torch.Tensor  # the rows of x_fit that are defective ...
    good_rows: torch.Tensor  # ... and good
    x_val: Images
    val_labels: np.ndarray  # bool (M,): True for a defective part
    anomaly: int | None = None  # the class index of synthetic defects (None: none are drawn)
    val_synthetic: int = 0  # validation parts that are good ones with a synthetic defect


def _split(samples: Sequence[Sample], indices: Sequence[int], cfg: SegConfig) -> _Parts:
    """The classes, a validation split by group that holds good and defective parts (synthetic
    ones on copies of its goods when the data has no defect), and both sides prepared at the
    working size; ModelError if either side lacks good or defective parts."""
    labelled = sorted({samples[i].cls for i in indices if samples[i].is_defect})
    if not labelled and cfg.synthetic <= 0:
        raise ModelError("Training a segmentation model needs defective parts with masks; this dataset has none.")
    classes = [*labelled, ANOMALY_CLASS] if cfg.synthetic > 0 else labelled
    real = bool(labelled)
    fit_idx, val_idx = group_holdout(samples, indices, cfg.validation_fraction, seed=cfg.seed, both_labels=real)
    val_labels = np.array([samples[i].is_defect for i in val_idx])
    x_fit, y_fit = _prepare(samples, fit_idx, cfg, classes)
    x_val, _ = _prepare(samples, val_idx, cfg, classes)
    val_synthetic = 0
    if not real:
        drawn = synthetic_defects.validation_copies(
            [x_val[i] for i in range(len(val_idx))], cfg.seed + 2, min_size_px=cfg.min_defect_px
        )
        copies = [c for c in drawn if c is not None]
        x_val = torch.cat([x_val, torch.stack(copies)]) if isinstance(x_val, torch.Tensor) else [*x_val, *copies]
        val_labels, val_synthetic = np.concatenate([val_labels, np.ones(len(copies), bool)]), len(copies)
    if val_labels.all() or not val_labels.any():
        raise ModelError(
            "The group-aware validation split holds no good or no defective parts; the dataset needs more groups."
        )
    defect_rows = torch.tensor([i for i, k in enumerate(fit_idx) if samples[k].is_defect], dtype=torch.long)
    good_rows = torch.tensor([i for i, k in enumerate(fit_idx) if not samples[k].is_defect], dtype=torch.long)
    if (real and not len(defect_rows)) or not len(good_rows):
        raise ModelError(
            "After the validation split no good or no defective part is left to train on; "
            "the dataset needs defects in more groups."
        )
    fit_defective = torch.tensor([float(samples[k].is_defect) for k in fit_idx])
    anomaly = len(classes) if cfg.synthetic > 0 else None
    return _Parts(
        classes,
        fit_idx,
        val_idx,
        x_fit,
        y_fit,
        fit_defective,
        defect_rows,
        good_rows,
        x_val,
        val_labels,
        anomaly,
        val_synthetic,
    )


def _network(
    n_classes: int, arch: dict[str, Any], cfg: SegConfig, init: dict[str, torch.Tensor] | None, dev: torch.device
) -> tuple[UNet, int, list[torch.nn.Module]]:
    """The U-Net on `dev`, with every tensor of `init` that fits it (all but the class heads when
    the classes changed); how many tensors came from `init`; its frozen modules.

    The first `frozen_blocks` blocks keep their ImageNet weights (and batch-norm statistics):
    generic edges and textures, and most of the backward cost on a CPU. Keeping them frozen keeps
    a model trained on a few sequences or tile groups from fitting those."""
    net = UNet(n_classes, arch=arch).to(dev).to(memory_format=torch.channels_last)
    started_from = 0
    if init is not None:
        own = net.state_dict()
        fitting = {k: v for k, v in init.items() if k in own and own[k].shape == v.shape}
        if not fitting:
            raise ModelError("The weights to start from do not fit this U-Net.")
        net.load_state_dict(fitting, strict=False)
        started_from = len(fitting)
    frozen = [net.encoder.stem, *net.encoder.blocks[: cfg.frozen_blocks]]
    for module in frozen:
        module.requires_grad_(False)
    return net, started_from, frozen


class _Budget:
    """A training's budget: `total_steps` optimizer steps or `time_limit_s` seconds, whichever
    runs out first. `step` counts the steps taken."""

    def __init__(self, total_steps: int, time_limit_s: float) -> None:
        self.total_steps = total_steps
        self.time_limit_s = time_limit_s
        self.step = 0
        self.t0 = time.monotonic()

    def seconds(self) -> float:
        return time.monotonic() - self.t0

    def lr_factor(self, _: int) -> float:
        """Warm-up, then cosine decay over the budget (LambdaLR's factor)."""
        frac = max(self.step / self.total_steps, self.seconds() / self.time_limit_s)
        return min(1.0, frac / 0.03) if frac < 0.03 else 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))

    def spent(self) -> bool:
        return self.seconds() > self.time_limit_s or self.step >= self.total_steps


class _Trainer:
    """The optimisation of one U-Net: batches of `parts` drawn with `gen`, the optimizer, its
    learning-rate schedule over the budget, and the moving average of the weights (as in timm's
    ModelEmaV2), which is what validation scores and the package keeps: the raw weights'
    validation AUROC jumps by up to 0.05 from epoch to epoch, so the chosen epoch was as much luck
    as merit."""

    def __init__(
        self,
        net: UNet,
        frozen: list[torch.nn.Module],
        parts: _Parts,
        cfg: SegConfig,
        dev: torch.device,
        gen: torch.Generator,
    ) -> None:
        self.net, self.frozen, self.parts, self.cfg, self.dev, self.gen = net, frozen, parts, cfg, dev, gen
        self.weights = _class_weights(_weighed_targets(parts, cfg), len(parts.classes)).to(dev)
        self.opt = torch.optim.AdamW(param_groups(net, cfg), weight_decay=1e-4)
        self.steps_per_epoch = max(1, min(STEPS_PER_EPOCH, math.ceil(len(parts.fit_idx) / cfg.batch_size)))
        self.budget = _Budget(cfg.epochs * self.steps_per_epoch, cfg.time_limit_s)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self.budget.lr_factor)
        self.average = WeightAverage(net, cfg.ema_decay)
        n_def = max(1, round(cfg.batch_size * cfg.defect_share))
        # Defective slots: real defects, and good parts that get a synthetic one (all, without real ones).
        self.n_syn = (
            0 if parts.anomaly is None else n_def if not len(parts.defect_rows) else round(n_def * cfg.synthetic)
        )
        self.n_def = n_def - self.n_syn
        self.synthetic_gen = torch.Generator().manual_seed(cfg.seed + 1)  # (the batches' draws stay as they were)

    def epoch(self) -> float:
        """`steps_per_epoch` optimizer steps; their mean loss."""
        self.net.train()
        for module in self.frozen:
            module.eval()
        total = 0.0
        for _ in range(self.steps_per_epoch):
            total += self._step(*self._batch())
        return total / self.steps_per_epoch

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images, targets and part labels of one batch, on the CPU: `n_def` defective and the rest
        good parts drawn at random, cropped when training on crops, augmented."""
        parts, gen = self.parts, self.gen
        n_good = self.cfg.batch_size - self.n_def  # (the synthetic defects' good parts among them)
        real = (
            parts.defect_rows[torch.randint(len(parts.defect_rows), (self.n_def,), generator=gen)]
            if self.n_def
            else None
        )
        goods = parts.good_rows[torch.randint(len(parts.good_rows), (n_good,), generator=gen)]
        rows = goods if real is None else torch.cat([real, goods])
        x, y, defective = _rows(parts.x_fit, rows), _rows(parts.y_fit, rows), parts.fit_defective[rows]
        if self.cfg.crop is not None:
            x, y = _crop(x, y, self.cfg.crop, gen)
            defective = (y.flatten(1) > 0).any(1).float()  # a crop is defective if it holds the defect
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):  # _architecture refuses this
            raise ModelError("Parts of different sizes (a scale factor) train on crops; give a crop size.")
        x = x.float() / 255
        if self.n_syn and parts.anomaly is not None:
            x, y, defective = synthetic_defects.add_to_batch(
                x,
                y,
                defective,
                slice(self.n_def, self.n_def + self.n_syn),
                parts.anomaly,
                self.synthetic_gen,
                min_size_px=self.cfg.min_defect_px,
            )
        x, y = _augment(x, y, gen)
        return x, y, defective

    def _step(self, x: torch.Tensor, y: torch.Tensor, defective: torch.Tensor) -> float:
        """One optimizer step on a batch, on the device; the batch's loss."""
        dev = self.dev
        x, y, defective = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True), defective.to(dev)
        logits, image_logit = self.net(_normalize(x).contiguous(memory_format=torch.channels_last))
        loss = _loss(logits, image_logit, y, defective, self.weights, self.cfg.image_loss_weight)
        self.opt.zero_grad()
        torch.autograd.backward(loss)
        self.opt.step()
        self.budget.step += 1
        self.sched.step()
        value = float(loss.detach())
        self.average.update(self.budget.step)
        return value


def _weighed_targets(parts: _Parts, cfg: SegConfig) -> torch.Tensor:
    """The pixels the class weights are counted on: the training targets, and, when synthetic
    defects are drawn, those of one synthetic defect on each of up to 32 good training parts."""
    targets = [t.flatten() for t in parts.y_fit]
    if parts.anomaly is not None:
        goods = [parts.x_fit[int(r)] for r in parts.good_rows[:32]]
        drawn = synthetic_defects.validation_copies(goods, cfg.seed + 3, min_size_px=cfg.min_defect_px)
        for image, copied in zip(goods, drawn, strict=True):
            if copied is not None:
                targets.append(((copied != image).any(0) * parts.anomaly).flatten().to(targets[0].dtype))
    return torch.cat(targets)


def _rows(parts: Images, rows: torch.Tensor) -> Images:
    """The parts at `rows`: a stacked batch, or a list of parts of their own sizes."""
    return parts[rows] if isinstance(parts, torch.Tensor) else [parts[r] for r in rows]


@dataclasses.dataclass(frozen=True)
class _Fitted:
    """The best epoch of a training (by the weight average's validation AUROC) and its history."""

    best_auroc: float
    best_epoch: int
    best_state: dict[str, torch.Tensor]  # the weight average's state dict at the best epoch
    history: list[dict[str, float]]


def _fit(trainer: _Trainer, parts: _Parts, cfg: SegConfig, progress: Progress | None) -> _Fitted:
    """Epochs until the validation AUROC has not improved for `patience` epochs, `epochs` were run
    or the budget is spent. A tie goes to the later, longer-trained epoch."""
    best = (-1.0, 0)
    best_state: dict[str, torch.Tensor] = {}
    history: list[dict[str, float]] = []
    for epoch in range(cfg.epochs):
        loss = trainer.epoch()
        val_auroc = auroc(parts.val_labels, _scores(trainer.average.net, parts.x_val, cfg.score))
        history.append({"epoch": epoch + 1, "loss": round(loss, 4), "val_image_auroc": round(val_auroc, 4)})
        if progress:
            progress(f"epoch loss {loss:.3f} val AUROC {val_auroc:.3f}", epoch + 1, cfg.epochs)
        if val_auroc >= best[0]:
            best = (val_auroc, epoch + 1)
            best_state = copy.deepcopy(trainer.average.net.state_dict())
        if epoch + 1 - best[1] >= cfg.patience or trainer.budget.spent():
            break
    return _Fitted(best[0], best[1], best_state, history)


def _input_meta(cfg: SegConfig) -> dict[str, Any]:
    return {
        **size_meta(cfg.size),
        "multiple": 32,
        "mean": list(backbone.IMAGENET_MEAN),
        "std": list(backbone.IMAGENET_STD),
        "color": "rgb" if cfg.color else "grey",
    }


def _training_record(
    samples: Sequence[Sample], parts: _Parts, cfg: SegConfig, trainer: _Trainer, fitted: _Fitted, started_from: int
) -> dict[str, Any]:
    """The package's `training` metadata: what was trained on, how, and for how long."""
    return {
        "parts": len(parts.fit_idx),
        "defective": int(len(parts.defect_rows)),
        "groups": len({samples[i].group for i in parts.fit_idx}),
        "epochs_run": len(fitted.history),
        "best_epoch": fitted.best_epoch,
        "history": fitted.history,
        "seed": cfg.seed,
        "weight_average_decay": cfg.ema_decay,
        "frozen_blocks": cfg.frozen_blocks,
        "synthetic": {"share": cfg.synthetic, "min_defect_px": cfg.min_defect_px, "validation": parts.val_synthetic},
        "tensors_from_init": started_from,
        "class_weights": [round(float(w), 3) for w in trainer.weights],
        "seconds": round(trainer.budget.seconds(), 1),
        "fingerprint": fingerprint(samples[i].image for i in parts.fit_idx),
    }
