"""The engineer's commands: `train` (a model package from a dataset, or a candidate from the labels),
`eval`, `predict` (image files), `models` (candidates, promotion, rollback) and `recipe thresholds`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any

from app.cli.common import StageProgress, logged_in, open_read_only


def cmd_train(args: argparse.Namespace) -> int:
    from inspection.errors import ConfigError
    from models.training.train import train_package

    if args.beside_line:
        os.nice(19)  # the line's inspection thread goes first whenever both want a core
        args.threads = args.threads or 1
    if args.from_db is not None:
        return _train_candidate(args)
    if args.dataset is None or args.kind is None or args.out is None:
        raise ConfigError(
            "train needs --dataset, --kind and --out (or --from-db for a candidate from the engineers' labels)."
        )
    progress = StageProgress()
    try:
        sha, meta = train_package(
            args.dataset,
            args.kind,
            args.out,
            size=args.size,
            color=not args.grey,
            epochs=args.epochs,
            time_limit_s=args.time_limit,
            crop=args.crop,
            pooling=args.pooling,
            coreset=args.coreset,
            frozen_blocks=args.frozen_blocks,
            decoder=args.decoder,
            cold_start=args.cold_start,
            synthetic=args.synthetic,
            min_defect_px=args.min_defect_px,
            seed=args.seed,
            false_reject=args.false_reject,
            name=args.name,
            threads=args.threads,
            device=args.device,
            progress=progress,
        )
    finally:
        progress.close()
    t = meta["thresholds"]
    classes, device, calibration = ", ".join(meta["classes"]), meta["training"]["device"], meta["calibration"]
    print(f"wrote {args.out} ({meta['kind']}, classes {classes}, trained on {device}) sha256 {sha}")
    print(
        f"thresholds: OK below {t['ok_below']:.4g}, NG at {t['ng_at']:.4g} (calibrated on "
        f"{calibration['good_parts']} good parts of {calibration['groups']} groups not trained on)"
    )
    if (fr := calibration.get("false_reject")) is not None:
        lo, hi = fr["interval_95"]
        print(
            f"false rejects: {fr['rejected']} of those {fr['of']} good parts at NG, for a target of "
            f"{calibration['false_reject_target']:.1%}; the rate on new parts may lie between {lo:.1%} and {hi:.1%} "
            "(95 %): more good parts from more groups narrow it"
        )
    return 0


def _train_candidate(args: argparse.Namespace) -> int:
    """`train --from-db`: a candidate from the engineers' labels, compared with the current model."""
    import torch

    from inspection.engineering.retraining import train_candidate
    from inspection.errors import ConfigError
    from inspection.settings.recipe import load_recipe

    if not args.from_db.is_file():
        raise ConfigError(f"There is no database at {args.from_db}.")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.progress_json:

        def progress(stage: str, i: int, n: int) -> None:
            print(json.dumps({"stage": stage, "i": i, "n": n}), flush=True)
    else:
        progress = StageProgress()

    def cancel(*_: object) -> None:
        raise KeyboardInterrupt  # unwinds: the exported labels and any partial candidate are removed

    signal.signal(signal.SIGTERM, cancel)  # the GUI's Cancel
    try:
        cand = train_candidate(
            args.from_db,
            load_recipe(args.recipe),
            out=args.out,
            base_dataset=args.dataset,
            kind=args.kind,
            epochs=args.epochs,
            time_limit_s=args.time_limit,
            device=args.device,
            progress=progress,
        )
    except KeyboardInterrupt:
        print("error: training cancelled; no candidate was written.", file=sys.stderr)
        return 130
    finally:
        if isinstance(progress, StageProgress):
            progress.close()
    if args.progress_json:
        print(json.dumps({"done": str(cand.package), "comparison": str(cand.comparison)}), flush=True)
        return 0
    print(f"wrote candidate {cand.package}\n" + comparison_table(cand.summary) + f"\ncomparison: {cand.comparison}")
    return 0


def comparison_table(summary: dict[str, Any]) -> str:
    """The candidate against the current model on the held-back labelled parts, as text."""
    models = summary["models"]
    rows = [
        ("model", "model", "{}"),
        ("escapes", "escapes", "{}"),
        ("false rejects", "false_rejects", "{}"),
        ("escape rate", "escape_rate", "{:.3f}"),
        ("false-reject rate", "false_reject_rate", "{:.3f}"),
        ("image AUROC", "image_auroc", "{:.4f}"),
        ("latency p50 ms", "latency_ms_p50", "{:.1f}"),
    ]
    lines = [
        f"held back: {summary['parts']} labelled parts ({summary['good']} OK, {summary['defective']} NG) "
        f"of {summary['groups']} parts, never trained on",
        f"  {'':<18} {'current':>24} {'candidate':>24}",
    ]
    for title, key, fmt in rows:
        cells = [fmt.format(models[r][key]) if key in models[r] else "-" for r in ("current", "candidate")]
        lines.append(f"  {title:<18} {cells[0]:>24} {cells[1]:>24}")
    for cls in sorted(set(models["current"]["per_class"]) | set(models["candidate"]["per_class"])):
        cells = [
            f"{models[r]['per_class'][cls]:.3f}" if cls in models[r]["per_class"] else "-"
            for r in ("current", "candidate")
        ]
        lines.append(f"  {'caught ' + cls:<18} {cells[0]:>24} {cells[1]:>24}")
    return "\n".join(lines)


def cmd_models(args: argparse.Namespace) -> int:
    from inspection.engineering import model_registry
    from inspection.engineering.retraining import list_candidates, read_comparison
    from inspection.record.opening import open_record
    from inspection.settings.config import default_db
    from inspection.settings.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    if args.models_command == "list":
        db = args.db or default_db()
        print(f"recipe {recipe.name} runs {model_registry.model_for(recipe, db)}")
        if db.is_file():
            with open_read_only(db) as store:
                for p in model_registry.history(store, recipe.name):
                    print(
                        f"  {p.at:%Y-%m-%d %H:%M} UTC {p.action:<8} {p.model} by {p.who}"
                        + (f": {p.comment}" if p.comment else "")
                    )
        for path, comparison in list_candidates(recipe.name):
            print(f"candidate {path}")
            if comparison:
                print(comparison_table(comparison))
        return 0
    with open_record(args.db or default_db()) as store, logged_in(store, args.user) as (user, _):
        if args.models_command == "promote":
            p = model_registry.promote(
                store,
                recipe,
                args.candidate,
                user=user,
                comment=args.comment,
                evaluation=read_comparison(args.candidate),
            )
        else:
            p = model_registry.rollback(store, recipe, user=user, comment=args.comment)
    print(
        f"recipe {recipe.name} now runs {p.model} ({p.path(recipe)})"
        + ("; the one before stays available for rollback" if p.action == "promote" else "")
    )
    return 0


def _metrics_table(m: dict[str, Any]) -> str:
    keys = (
        "image_auroc",
        "pixel_auroc",
        "aupro",
        "f1",
        "false_reject_rate",
        "escape_rate",
        "defects_passed_ok",
        "defects_to_review",
        "good_ng",
        "good_review",
        "review_rate",
        "escape_rate_at_5pct_false_rejects",
        "escape_rate_at_1pct_false_rejects",
        "latency_ms_p50",
        "latency_ms_p99",
    )
    lines = [f"{m['parts']} parts ({m['good']} good, {m['defective']} defective)"]
    lines += [f"  {k:<36} {m[k]:.4f}" for k in keys if k in m]
    at5 = m.get("per_class_at_5pct_false_rejects", {})
    lines += [
        f"  detected {c:<27} {v:.3f}" + (f"   (at 5 % false rejects {at5[c]:.3f})" if c in at5 else "")
        for c, v in m["per_class"].items()
    ]
    return "\n".join(lines)


def cmd_eval(args: argparse.Namespace) -> int:
    from models.datasets import load_dataset, of_groups
    from models.evaluation import evaluate
    from models.package import load_package

    inspector = load_package(args.model, device=args.device)
    ds = load_dataset(args.dataset)
    samples = [s for s in ds.samples if s.split != "train"]  # MVTec: the test split
    if args.groups:
        samples = of_groups(samples, args.groups)
    progress = StageProgress()
    try:
        metrics = evaluate(inspector, samples, progress=lambda i, n: progress("evaluate", i, n))
    finally:
        progress.close()
    metrics["model"] = {"name": inspector.info.name, "version": inspector.info.version, "sha256": inspector.info.sha256}
    metrics["dataset"] = str(args.dataset)
    print(_metrics_table(metrics))
    if args.json:
        args.json.write_text(json.dumps(metrics, indent=2))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from inspection.runtime.files import collect_inputs, predict_files
    from models.package import load_package

    files = collect_inputs(args.input)
    inspector = load_package(args.model, device=args.device)
    progress = StageProgress()
    try:
        summary = predict_files(inspector, files, args.out, progress=progress)
    finally:
        progress.close()
    print(f"{summary.inspected} of {len(files)} images inspected; verdicts in {summary.csv}")
    if summary.failed:  # the others were inspected; exit 1: some inputs were not
        print(
            f"error: {len(summary.failed)} of {len(files)} images could not be inspected (the error column of "
            f"{summary.csv} says why), the first: {summary.failed[0][1]}",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_recipe(args: argparse.Namespace) -> int:
    from inspection.engineering.recipe_edit import set_thresholds
    from inspection.record.opening import open_record
    from inspection.settings.config import default_db

    with open_record(args.db or default_db()) as store, logged_in(store, args.user) as (user, _):
        old, new = set_thresholds(store, user, args.recipe, ok_below=args.ok_below, ng_at=args.ng_at)
    print(
        f"recipe {args.recipe}: OK below {old['ok_below']} -> {new['ok_below']}, NG at {old['ng_at']} -> {new['ng_at']}"
    )
    return 0
