"""A candidate model from the current model's data plus the engineers' labels.

- An anomaly model (PatchCore) learns only from good parts: its memory bank - the summary of the
  good parts it was trained on - grows by a coreset of the patches of the parts engineers labelled
  OK (the false rejects above all), and its thresholds are recalibrated at the same false-reject
  target on the parent's calibration scores (upper bounds now: a larger bank only lowers scores)
  plus a group-aware share of those good labels kept out of the bank.
- A segmentation model trains on the current model's dataset (when its folder is at hand, or one
  given) plus the labelled parts, starting from the current weights when the current model is a
  segmentation model (all of them when the classes are the same; all but the class heads when
  the labels bring new classes). NG labels without a mask cannot teach a mask: left out
  of training, still evaluated.
- Which labelled parts are held back for the comparison is decided by a hash of their group, so a
  part held back once is held back in every later round: no candidate ever trains on the parts it
  is compared on, and neither did the model it is compared with.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Collection, Sequence
from typing import Any

import torch

from models.calibration import calibrate, false_reject_interval
from models.datasets import Dataset, Sample, fingerprint, group_holdout, read_image
from models.errors import ModelError
from models.features import InputSpec
from models.package import build_inspector
from models.training.patchcore_fit import collect_patches, greedy_coreset
from models.training.segmentation import SegConfig, train_segmentation

Progress = Callable[[str, int, int], None]
HELD_BACK_FRACTION = 0.3


class Cancelled(Exception):
    """Raised by a progress callback to stop a training between steps."""


def is_held_back(group: str, fraction: float = HELD_BACK_FRACTION) -> bool:
    """Whether the parts of `group` are held back for comparisons: a fixed function of its name."""
    return int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction


def held_back_split(
    samples: Sequence[Sample], fraction: float = HELD_BACK_FRACTION, trained: Collection[str] = frozenset()
) -> tuple[list[int], list[int]]:
    """(train, held back) indices, by group (see `is_held_back`); groups in `trained` (what the
    model to compare with learnt from) are never held back. With very few groups, at least one
    group lands on each side (the lowest hash held back, the highest trained on), and a good part
    on the training side when more than one group is held back."""
    groups = sorted({s.group for s in samples}, key=lambda g: hashlib.sha256(g.encode()).hexdigest())
    free = [g for g in groups if g not in trained]
    if len(groups) < 2 or not free:
        raise ModelError(
            f"Retraining needs labelled parts of at least two physical parts, one of them new to the current model "
            f"(one to learn from, one to compare on), not {len(groups)} ({len(free)} new)."
        )
    held = {g for g in free if is_held_back(g, fraction)}
    if not held:
        held = {free[0]}
    if len(held) == len(groups):
        held.discard(free[-1])
    good_groups = [g for g in groups if any(not s.is_defect for s in samples if s.group == g)]
    if good_groups and all(g in held for g in good_groups) and len(held) > 1:
        held.discard(good_groups[-1])  # something good to learn from, when there is anything
    return (
        [i for i, s in enumerate(samples) if s.group not in held],
        [i for i, s in enumerate(samples) if s.group in held],
    )


def next_version(version: str) -> str:
    return str(int(version) + 1) if version.isdigit() else f"{version}.1"


@dataclasses.dataclass(frozen=True)
class RetrainOptions:
    kind: str | None = None  # None: the current model's kind
    epochs: int | None = None  # segmentation
    time_limit_s: float | None = None
    bank_growth: float = 0.25  # anomaly: at most this share of the bank's rows added per retraining
    calibration_fraction: float = 0.3  # anomaly: good labels kept out of the bank to recalibrate on
    seed: int = 0
    # segmentation: encoder blocks kept at their ImageNet weights (None: SegConfig's default)
    frozen_blocks: int | None = None


def retrain(
    meta: dict[str, Any],
    state: dict[str, torch.Tensor],
    labels: Dataset,
    train_idx: Sequence[int],
    *,
    base: Dataset | None = None,
    options: RetrainOptions = RetrainOptions(),
    device: str = "cpu",
    progress: Progress | None = None,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Metadata and state of a candidate (same name, next version, `parent` = the current model)."""
    kind = options.kind or ("anomaly" if meta["kind"] == "patchcore" else "segmentation")
    if kind == "anomaly":
        if meta["kind"] != "patchcore":
            raise ModelError(
                "An anomaly candidate grows an anomaly model's memory bank; the current model is not one "
                "(retrain as segmentation)."
            )
        out_meta, out_state = _grow_patchcore(meta, state, labels.samples, train_idx, options, device, progress)
    elif kind == "segmentation":
        out_meta, out_state = _train_segmentation(meta, state, labels, train_idx, base, options, device, progress)
    else:
        raise ModelError(f"Kind must be anomaly or segmentation, not {kind!r}.")
    out_meta["name"] = meta["name"]
    out_meta["version"] = next_version(str(meta["version"]))
    out_meta["parent"] = {
        "name": meta["name"],
        "version": meta["version"],
        "kind": meta["kind"],
        "fingerprint": meta.get("training", {}).get("fingerprint"),
    }
    train = [labels.samples[i] for i in train_idx]
    out_meta.setdefault("training", {})["labels"] = {
        "parts": len(train),
        "good": sum(not s.is_defect for s in train),
        "defective": sum(s.is_defect for s in train),
        "fingerprint": fingerprint(s.image for s in train),
        "held_back_fraction": HELD_BACK_FRACTION,
        "groups": sorted({s.group for s in train} | set(meta.get("training", {}).get("labels", {}).get("groups", []))),
    }
    return out_meta, out_state


def _grow_patchcore(
    meta: dict[str, Any],
    state: dict[str, torch.Tensor],
    samples: Sequence[Sample],
    train_idx: Sequence[int],
    options: RetrainOptions,
    device: str,
    progress: Progress | None,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    good = [i for i in train_idx if not samples[i].is_defect]
    if not good:
        raise ModelError(
            "No labelled part is OK: an anomaly model learns only from good parts; relabel false rejects OK first."
        )
    groups = {samples[i].group for i in good}
    fit_idx, cal_idx = (
        group_holdout(samples, good, options.calibration_fraction, seed=options.seed)
        if len(groups) >= 4
        else (good, [])
    )
    new_state, rows = _grown_bank(meta, state, [samples[i] for i in fit_idx], options, device, progress)
    out = {k: v for k, v in meta.items() if k not in ("metrics", "created_at", "format_version")}
    _recalibrate(out, new_state, [samples[i] for i in cal_idx], device, progress)
    out["training"] = {
        **meta.get("training", {}),
        "memory_bank": int(new_state["memory_bank"].shape[0]),
        "rows_added": rows,
        "good_labels_in_bank": len(fit_idx),
        "good_labels_calibrated_on": len(cal_idx),
    }
    return out, new_state


def _grown_bank(
    meta: dict[str, Any],
    state: dict[str, torch.Tensor],
    fit: Sequence[Sample],
    options: RetrainOptions,
    device: str,
    progress: Progress | None,
) -> tuple[dict[str, torch.Tensor], int]:
    """The parent's memory bank plus a coreset of the patches of the good parts `fit` (at most
    `bank_growth` of its rows); the state dict and how many rows were added."""
    spec = InputSpec.from_meta(meta, meta["name"])
    color = meta["input"].get("color") != "grey"
    bank = state["memory_bank"]
    pool = collect_patches(
        (read_image(s.image, color) for s in fit),
        len(fit),
        spec,
        taps=tuple(meta["backbone"]["taps"]),
        pooling=meta["backbone"]["pooling"],
        pool_cap=100_000,
        seed=options.seed,
        device=device,
        progress=progress,
    )
    rows = max(1, min(pool.shape[0], round(bank.shape[0] * options.bank_growth)))
    chosen = greedy_coreset(pool, rows, seed=options.seed, device=device, progress=progress)
    return {"memory_bank": torch.cat([bank, pool[chosen]]).contiguous()}, rows


def _recalibrate(
    out: dict[str, Any],
    state: dict[str, torch.Tensor],
    cal: Sequence[Sample],
    device: str,
    progress: Progress | None,
) -> None:
    """Set the thresholds and `calibration` of the candidate's metadata `out` (the parent's, as
    yet): the parent's calibration scores, upper bounds under the grown bank, plus the candidate's
    scores of the good parts `cal` kept out of the bank, at the parent's false-reject targets."""
    color = out["input"].get("color") != "grey"
    cal_record = dict(out.get("calibration") or {})
    scores = list(cal_record.get("good_scores") or [])
    provisional = build_inspector(out, state, device=device)
    new_scores = []
    for k, s in enumerate(cal):
        new_scores.append(round(float(provisional.predict(read_image(s.image, color)).score), 6))
        if progress:
            progress("calibration", k + 1, len(cal))
    fr = float(cal_record.get("false_reject_target", 0.01))
    review = float(cal_record.get("review_false_reject", 0.05))
    if scores or new_scores:
        out["thresholds"] = calibrate(scores + new_scores, false_reject=fr, review_false_reject=review)
    out["calibration"] = {
        **cal_record,
        "good_parts": int(cal_record.get("good_parts", 0)) + len(new_scores),
        "false_reject_target": fr,
        "review_false_reject": review,
        "good_scores": sorted(scores + new_scores),
        "false_reject": false_reject_interval(scores + new_scores, out["thresholds"]["ng_at"]),
        "note": "the parent's calibration scores (upper bounds under the grown bank) "
        "plus good labels kept out of the bank",
    }


def _train_segmentation(
    meta: dict[str, Any],
    state: dict[str, torch.Tensor],
    labels: Dataset,
    train_idx: Sequence[int],
    base: Dataset | None,
    options: RetrainOptions,
    device: str,
    progress: Progress | None,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    usable = [
        labels.samples[i] for i in train_idx if not (labels.samples[i].is_defect and labels.samples[i].mask is None)
    ]
    samples = list(base.samples if base is not None else ()) + usable
    samples = [s for s in samples if not s.doubtful]
    if not any(s.is_defect for s in samples):
        raise ModelError("No labelled NG part has a mask: a segmentation model needs drawn defects to learn from.")
    classes = sorted({s.cls for s in samples if s.is_defect})
    init = _initial_weights(meta, state, classes)
    out, new_state = train_segmentation(
        samples,
        list(range(len(samples))),
        _seg_config(meta, options, init is not None),
        name=meta["name"],
        device=device,
        progress=progress,
        init=init,
    )
    out["training"]["base_dataset"] = str(base.root) if base is not None else None
    if init is None:
        out["training"]["started_from"] = "ImageNet encoder, new decoder"
    elif list(meta["classes"]) == classes:
        out["training"]["started_from"] = "the current model's weights"
    else:
        out["training"]["started_from"] = "the current model's weights, new class heads"
    out["training"]["ng_labels_without_mask_left_out"] = sum(
        labels.samples[i].is_defect and labels.samples[i].mask is None for i in train_idx
    )
    return out, new_state


def _initial_weights(
    meta: dict[str, Any], state: dict[str, torch.Tensor], classes: list[str]
) -> dict[str, torch.Tensor] | None:
    """The weights a segmentation candidate starts from: a segmentation parent's, its class heads
    only when they name the same classes in the same order; None (ImageNet) for any other parent."""
    if meta["kind"] != "segmentation":
        return None
    if list(meta["classes"]) == classes:
        return state
    return {k: v for k, v in state.items() if not k.startswith("head.")}


def _seg_config(meta: dict[str, Any], options: RetrainOptions, from_parent: bool) -> SegConfig:
    """The candidate's training configuration: the parent's colour, and its working size, frozen
    blocks and architecture where it is a segmentation model (the architecture only when
    `from_parent`, starting from its weights); the options' epochs, time limit and frozen blocks."""
    kw: dict[str, Any] = {"seed": options.seed, "color": meta["input"].get("color") != "grey"}
    inp = meta["input"]
    if meta["kind"] == "segmentation" and "height" in inp:
        kw["size"] = (int(inp["height"]), int(inp["width"]))
    if options.epochs:
        kw["epochs"] = options.epochs
    if options.time_limit_s:
        kw["time_limit_s"] = options.time_limit_s
    frozen = options.frozen_blocks
    if frozen is None and meta["kind"] == "segmentation":
        frozen = meta.get("training", {}).get("frozen_blocks")  # the parent's, unless asked otherwise
    if frozen is not None:
        kw["frozen_blocks"] = int(frozen)
    if from_parent and "arch" in meta:
        kw["arch"] = (tuple(meta["arch"]["taps"]), tuple(meta["arch"]["widths"]))
        kw["decoder_block"] = meta["arch"].get("block", "conv")
    return SegConfig(**kw)
