"""The learning curve of the engineers' loop: from a good-only model to a supervised one as labels
for the parts the line rejected come in. On magnetic_tile (the development part), one group fold
is held back (never trained on, calibrated on or labelled); the other parts are the line's.

Round 0 is a PatchCore model trained on the line's good parts (it holds its own calibration share
back). It scores every line part; those it rejects or sends to REVIEW are the queue an engineer
would see, taken in a seeded random order (the order they came off the line) and labelled with the
dataset's truth (defects with their class and mask, good parts as good). A good-only model is a
screen at first, so the line runs it with a wide REVIEW band: the recipe's
`verdict.review_false_reject` (`--review-false-reject`, default 0.2: a fifth of good parts go to
REVIEW), recalibrated from the scores the package keeps; its NG threshold stays the package's.
Each later round labels more of that queue (nested: a round's labels hold the earlier ones) and
trains a U-Net candidate with `models.training.retrain` from the previous round's model, on the
line's good parts that are not among the labels plus the labelled parts. Every model is evaluated
on the held-back fold at its own operating thresholds.

    .venv/bin/python bench/learning_curve.py [--dataset ../shared/datasets/magnetic_tile] [--fold 0]
        [--labels 15,30,60,120,all] [--epochs 14] [--device auto] [--json FILE] [--out DIR] [--quick]

`--quick` is a smoke run (PatchCore at scale 0.4 with a 1024-row bank, 2 epochs, labels 10,20):
a few minutes on two CPU cores. Outputs (each round's package and the rows as JSON) go to `--out`
(default a new temporary folder), never into the repository: the images may not be copied there.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.calibration import recalibrate  # noqa: E402
from models.datasets import Dataset, Sample, group_kfold, load_dataset, read_image  # noqa: E402
from models.errors import ModelError  # noqa: E402
from models.evaluation import evaluate  # noqa: E402
from models.package import build_inspector, resolve_device, save_package  # noqa: E402
from models.training.anomaly import AnomalyConfig, train_patchcore  # noqa: E402
from models.training.retrain import RetrainOptions, retrain  # noqa: E402

FOLDS = 5
# docs/model_results.md: what worked on magnetic_tile
FULL_PATCHCORE = {"size": 0.75, "coreset_size": 8192, "pool_cap": 100_000}
QUICK_PATCHCORE = {"size": 0.4, "coreset_size": 1024, "pool_cap": 20_000}
QUICK_EPOCHS = 2
QUICK_LABELS = "10,20"
QUICK_TIME_LIMIT_S = 300.0


def parse_labels(text: str) -> list[int | None]:
    """Cumulative label counts; None stands for `all` (the whole queue)."""
    out: list[int | None] = []
    for part in text.split(","):
        part = part.strip().lower()
        if part == "all":
            out.append(None)
        elif part.isdigit() and int(part) > 0:
            out.append(int(part))
        else:
            raise argparse.ArgumentTypeError(f"label counts are positive whole numbers or 'all', not {part!r}")
    numbers = [n for n in out if n is not None]
    if (
        numbers != sorted(numbers)
        or len(set(numbers)) != len(numbers)
        or (None in out and out[-1] is not None)
        or out.count(None) > 1
    ):
        raise argparse.ArgumentTypeError("label counts must grow from round to round ('all' last)")
    return out


def rounds_of(counts: list[int | None], queue: int) -> list[int]:
    """The label counts capped at the queue's length, without repeats."""
    out: list[int] = []
    for n in counts:
        n = queue if n is None else min(n, queue)
        if n > 0 and (not out or n > out[-1]):
            out.append(n)
    return out


def row_of(
    round_no: int,
    labelled: list[Sample],
    meta: dict[str, Any],
    result: dict[str, Any],
    train_s: float,
    eval_s: float,
    started_from: str,
) -> dict[str, Any]:
    keep = (
        "parts",
        "good",
        "defective",
        "escapes",
        "false_rejects",
        "escape_rate",
        "false_reject_rate",
        "review_rate",
        "image_auroc",
        "escape_rate_at_5pct_false_rejects",
        "pixel_auroc",
        "aupro",
        "per_class",
        "per_class_at_5pct_false_rejects",
        "thresholds",
    )
    return {
        "round": round_no,
        "model": f"{meta['kind']} v{meta['version']}",
        "kind": meta["kind"],
        "classes": list(meta["classes"]),
        "labelled": len(labelled),
        "labelled_good": sum(not s.is_defect for s in labelled),
        "labelled_defective": sum(s.is_defect for s in labelled),
        "started_from": started_from,
        "train_s": round(train_s, 1),
        "eval_s": round(eval_s, 1),
        **{k: result[k] for k in keep if k in result},
    }


HEADER = (
    f"{'round':>5} {'labelled':>9} {'good/def':>9} {'escapes':>12} {'false rej.':>12} {'image AUROC':>11} "
    f"{'esc@5%FR':>8} {'train s':>8}  model"
)


def fmt(row: dict[str, Any]) -> str:
    if "error" in row:
        return (
            f"{row['round']:>5} {row['labelled']:>9} {row['labelled_good']:>4}/{row['labelled_defective']:<4}"
            f"  failed: {row['error']}"
        )
    esc = f"{row['escapes']} ({row['escape_rate']:.0%})"
    fr = f"{row['false_rejects']} ({row['false_reject_rate']:.0%})"
    auc = f"{row['image_auroc']:.3f}" if "image_auroc" in row else "-"
    at5 = f"{row['escape_rate_at_5pct_false_rejects']:.0%}" if "escape_rate_at_5pct_false_rejects" in row else "-"
    return (
        f"{row['round']:>5} {row['labelled']:>9} {row['labelled_good']:>4}/{row['labelled_defective']:<4} "
        f"{esc:>12} {fr:>12} {auc:>11} {at5:>8} {row['train_s']:>8.0f}  {row['model']}, {row['started_from']}"
    )


def verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Escapes + false rejects (counts on the held-back parts, at each model's own thresholds) of the
    last trained round against round 0 and round 1."""
    done = [r for r in rows if "error" not in r]
    errors = {r["round"]: r["escapes"] + r["false_rejects"] for r in done}
    out: dict[str, Any] = {"errors_by_round": errors}
    if len(done) < 2:
        out["improved"] = False
        out["text"] = "The curve did NOT improve: no candidate round finished."
        return out
    last, first = done[-1], done[0]
    vs0 = errors[last["round"]] < errors[first["round"]]
    lines = [
        f"round {last['round']} ({last['labelled']} labelled rejects): escapes + false rejects {errors[last['round']]} "
        f"against round 0's {errors[first['round']]}: {'improved' if vs0 else 'did NOT improve'}"
    ]
    out.update({"last_round": last["round"], "improved_vs_round0": vs0})
    if len(done) >= 3:
        one = done[1]
        vs1 = errors[last["round"]] < errors[one["round"]]
        lines.append(
            f"against round {one['round']}'s {errors[one['round']]} ({one['labelled']} labelled rejects): "
            f"{'improved' if vs1 else 'did NOT improve'}"
        )
        out["improved_vs_round1"] = vs1
    else:
        vs1 = True  # round 1 is the last round
    if "image_auroc" in last and "image_auroc" in first:
        lines.append(
            f"image AUROC {first['image_auroc']:.3f} -> {last['image_auroc']:.3f}, escapes at 5 % false rejects "
            f"{first.get('escape_rate_at_5pct_false_rejects', float('nan')):.0%} -> "
            f"{last.get('escape_rate_at_5pct_false_rejects', float('nan')):.0%}"
        )
    out["improved"] = vs0 and vs1
    lines.append("The curve improved." if out["improved"] else "The curve did NOT improve.")
    out["text"] = "\n".join(lines)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=REPO.parent / "shared" / "datasets" / "magnetic_tile")
    ap.add_argument("--fold", type=int, default=0, help=f"the held-back group fold (of {FOLDS})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--labels",
        type=parse_labels,
        default=None,
        help="cumulative numbers of labelled rejects per round, 'all' for the whole queue (default 15,30,60,120,all)",
    )
    ap.add_argument("--epochs", type=int, default=None, help="segmentation epochs per round (default 14)")
    ap.add_argument(
        "--time-limit", type=float, default=None, help="segmentation training seconds per round at most (default 1800)"
    )
    ap.add_argument(
        "--frozen-blocks", type=int, default=7, help="segmentation: encoder blocks kept at their ImageNet weights"
    )
    ap.add_argument(
        "--review-false-reject",
        type=float,
        default=0.2,
        help="round 0's REVIEW band: the share of good parts it sends to review "
        "(the recipe's verdict.review_false_reject)",
    )
    ap.add_argument("--device", default="auto", help="auto (a CUDA GPU when there is one), cpu or cuda")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for each round's package and the JSON (default a new temporary folder)",
    )
    ap.add_argument("--quick", action="store_true", help="tiny settings for a smoke run")
    a = ap.parse_args()
    labels_arg = a.labels or parse_labels(QUICK_LABELS if a.quick else "15,30,60,120,all")
    epochs = a.epochs or (QUICK_EPOCHS if a.quick else 14)
    time_limit = a.time_limit or (QUICK_TIME_LIMIT_S if a.quick else 1800.0)
    if not a.dataset.is_dir():
        print(f"error: no dataset at {a.dataset} (magnetic_tile lives in ../shared/datasets).", file=sys.stderr)
        return 2
    try:
        device = resolve_device(a.device)
        ds = load_dataset(a.dataset)
        splits = group_kfold(ds.samples, FOLDS, seed=a.seed)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not 0 <= a.fold < FOLDS:
        print(f"error: --fold must be between 0 and {FOLDS - 1}, not {a.fold}.", file=sys.stderr)
        return 2
    if a.threads:
        torch.set_num_threads(a.threads)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = False  # as train_model: a seed repeats a CUDA training as closely as it can
        torch.backends.cudnn.deterministic = True
    out_dir = a.out or Path(tempfile.mkdtemp(prefix="lepton-learning-curve-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        print(f"warning: 1-minute load is {load1:.2f}: another process shares the cores, training times are not clean")
    gpu = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None

    line_idx, test_idx = splits[a.fold]
    line = [ds.samples[i] for i in line_idx]
    test = [ds.samples[i] for i in test_idx]
    pc_settings = QUICK_PATCHCORE if a.quick else FULL_PATCHCORE
    print(
        f"{ds.root.name}: {len(ds.samples)} parts; held back fold {a.fold} of {FOLDS} by group: {len(test)} parts "
        f"({sum(s.is_defect for s in test)} defective, {len({s.group for s in test})} groups); "
        f"the line's parts: {len(line)} ({sum(s.is_defect for s in line)} defective). "
        f"Device {device}{f' ({gpu})' if gpu else ''}, torch threads {torch.get_num_threads()}, "
        f"seed {a.seed}{', QUICK settings' if a.quick else ''}; outputs in {out_dir}",
        flush=True,
    )
    settings = {
        "patchcore": {**pc_settings, "color": "grey", "pooling": "per_tap"},
        "segmentation": {
            "size": "256x256 (SegConfig default; retrain keeps a segmentation parent's)",
            "color": "grey (the parent's)",
            "epochs": epochs,
            "time_limit_s": time_limit,
            "frozen_blocks": a.frozen_blocks,
        },
    }
    report: dict[str, Any] = {
        "dataset": str(ds.root),
        "fold": a.fold,
        "folds": FOLDS,
        "seed": a.seed,
        "device": device,
        "gpu": gpu,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "quick": a.quick,
        "settings": settings,
        "rows": [],
    }
    rows: list[dict[str, Any]] = report["rows"]

    def write() -> None:
        text = json.dumps(report, indent=2, default=float)
        (out_dir / "learning_curve.json").write_text(text)
        if a.json:
            a.json.write_text(text)

    def epoch_progress(stage: str, i: int, n: int) -> None:
        if stage.startswith("epoch"):
            print(f"        epoch {i}/{n}: {stage[len('epoch ') :]}", flush=True)

    # Round 0: the good-only model.
    t0 = time.monotonic()
    cfg = AnomalyConfig(color=False, pooling="per_tap", seed=a.seed, **pc_settings)
    meta, state = train_patchcore(line, list(range(len(line))), cfg, name="learning-curve", version="0", device=device)
    train_s = time.monotonic() - t0
    save_package(out_dir / "round0-patchcore.lpkg", meta, state)
    inspector = build_inspector(meta, state, device=device)
    t0 = time.monotonic()
    result = evaluate(inspector, test, color=False)
    rows.append(row_of(0, [], meta, result, train_s, time.monotonic() - t0, "good parts only"))
    print(HEADER)
    print(fmt(rows[-1]), flush=True)

    # The engineer's queue: the line parts round 0 would show an engineer, in the order they came.
    band = recalibrate(
        meta, false_reject=float(meta["calibration"]["false_reject_target"]), review_false_reject=a.review_false_reject
    )
    ok_below = float(band["ok_below"]) if band else float(meta["thresholds"]["ok_below"])
    queue = [s for s in line if inspector.predict(read_image(s.image, color=False)).score >= ok_below]
    random.Random(a.seed).shuffle(queue)
    line_defects = sum(s.is_defect for s in line)
    q_def = sum(s.is_defect for s in queue)
    classes = sorted({s.cls for s in queue if s.is_defect})
    report["queue"] = {
        "rejects": len(queue),
        "good": len(queue) - q_def,
        "defective": q_def,
        "line_defects_never_shown": line_defects - q_def,
        "ok_below": ok_below,
        "by_class": {c: sum(s.cls == c for s in queue) for c in classes},
    }
    report["queue"]["review_false_reject"] = a.review_false_reject
    print(
        f"      queue: {len(queue)} of {len(line)} line parts NG or REVIEW "
        f"(OK below {ok_below:.4g}: {a.review_false_reject:.0%} of calibration goods to REVIEW) "
        f"({len(queue) - q_def} good, "
        f"{q_def} defective: {', '.join(f'{c} {n}' for c, n in report['queue']['by_class'].items())}); "
        f"{line_defects - q_def} defective line parts passed as OK and are never labelled",
        flush=True,
    )
    write()

    line_goods = [s for s in line if not s.is_defect]
    parent_meta, parent_state = meta, state
    for round_no, n in enumerate(rounds_of(labels_arg, len(queue)), start=1):
        labelled = queue[:n]
        chosen = {s.image for s in labelled}
        base = Dataset(ds.root, ds.format, tuple(s for s in line_goods if s.image not in chosen))
        labels = Dataset(ds.root, ds.format, tuple(labelled))
        options = RetrainOptions(
            kind="segmentation", epochs=epochs, time_limit_s=time_limit, frozen_blocks=a.frozen_blocks, seed=a.seed
        )
        print(
            f"round {round_no}: {n} labelled rejects, {len(base.samples)} good line parts as the base, from "
            f"{parent_meta['kind']} v{parent_meta['version']}",
            flush=True,
        )
        t0 = time.monotonic()
        try:
            cand_meta, cand_state = retrain(
                parent_meta,
                parent_state,
                labels,
                list(range(n)),
                base=base,
                options=options,
                device=device,
                progress=epoch_progress,
            )
        except ModelError as exc:
            rows.append(
                {
                    "round": round_no,
                    "labelled": n,
                    "labelled_good": sum(not s.is_defect for s in labelled),
                    "labelled_defective": sum(s.is_defect for s in labelled),
                    "error": str(exc),
                }
            )
            print(HEADER)
            print(fmt(rows[-1]), flush=True)
            write()
            continue
        train_s = time.monotonic() - t0
        save_package(out_dir / f"round{round_no}-{cand_meta['kind']}.lpkg", cand_meta, cand_state)
        color = cand_meta["input"].get("color") != "grey"
        t0 = time.monotonic()
        result = evaluate(build_inspector(cand_meta, cand_state, device=device), test, color=color)
        rows.append(
            row_of(
                round_no,
                labelled,
                cand_meta,
                result,
                train_s,
                time.monotonic() - t0,
                cand_meta["training"]["started_from"],
            )
        )
        rows[-1]["best_epoch"] = cand_meta["training"].get("best_epoch")
        rows[-1]["epochs_run"] = cand_meta["training"].get("epochs_run")
        print(HEADER)
        print(fmt(rows[-1]), flush=True)
        write()
        parent_meta, parent_state = cand_meta, cand_state

    print(
        f"\nlearning curve on {ds.root.name} fold {a.fold} "
        f"({len(test)} held-back parts: {sum(not s.is_defect for s in test)} good, "
        f"{sum(s.is_defect for s in test)} defective); escapes and false rejects at each model's own NG threshold:"
    )
    print(HEADER)
    for row in rows:
        print(fmt(row))
    report["verdict"] = verdict(rows)
    print(report["verdict"]["text"])
    write()
    print(f"rows written to {out_dir / 'learning_curve.json'}" + (f" and {a.json}" if a.json else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
