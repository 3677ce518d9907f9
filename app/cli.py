"""`lepton-inspect`: the command line. Headless commands never import Qt.

    lepton-inspect cameras
    lepton-inspect run --camera SPEC [--model PKG] [--db PATH|URL] [--parts N] [--json]
    lepton-inspect train --dataset DIR --kind anomaly|segmentation --out PKG [--epochs N] [--seed S]
    lepton-inspect eval --model PKG --dataset DIR [--json FILE]
    lepton-inspect predict --model PKG --input DIR_OR_FILES --out DIR
    lepton-inspect gui [--camera SPEC] [--model PKG] [--db PATH|URL]  (the default command)
    lepton-inspect users init|add|list|set-role|disable|enable|passwd ...
    lepton-inspect audit verify|list [--db PATH]
    lepton-inspect recipe thresholds --recipe FILE --user NAME [--ok-below X] [--ng-at Y]

Passwords come from $LEPTON_PASSWORD (a new one from $LEPTON_NEW_PASSWORD), else are asked on the terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import logging.handlers
import os
import signal
import sys
from pathlib import Path

log = logging.getLogger("app.cli")


def default_camera_spec() -> str:
    import resources

    return f"emu:{resources.DEMO_SAMPLES}"


DB_HELP = "SQLite database; default: lepton.db in the user data folder"
URL_HELP = (
    "SQLite database, or a plant database server's URL (postgresql://user@host:5432/lepton); default: lepton.db in the "
    "user data folder"
)


def _db(text: str) -> str | Path:
    """--db: a SQLite file, or a database server's URL (kept as text)."""
    return text if "://" in text else Path(text)


def _db_file(text: str) -> Path:
    """--db of a command that works on the station's own record: a SQLite file only."""
    if "://" in text:
        raise argparse.ArgumentTypeError("this command works on a station's SQLite file, not on a server's URL")
    return Path(text)


def _parser() -> argparse.ArgumentParser:
    from camera.spec import SPEC_HELP

    p = argparse.ArgumentParser(
        prog="lepton-inspect", description="Lepton Inspect: industrial visual inspection station."
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log debug detail to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def line_options(sp: argparse.ArgumentParser, camera_required: bool) -> None:
        sp.add_argument("--camera", required=camera_required, default=None, metavar="SPEC", help=SPEC_HELP)
        sp.add_argument(
            "--model",
            type=Path,
            default=None,
            metavar="PKG",
            help="model package (.lpkg); default: the recipe's, else the bundled demo model",
        )
        sp.add_argument(
            "--db",
            type=_db,
            default=None,
            metavar="PATH|URL",
            help=URL_HELP + "; with a URL the station records into that file and forwards its rows to the server",
        )
        sp.add_argument(
            "--buffer",
            type=Path,
            default=None,
            metavar="PATH",
            help="with --db URL: the station's own SQLite file, forwarded to the server (default: the default database)",
        )
        sp.add_argument(
            "--recipe", type=Path, default=None, metavar="FILE", help="recipe (.toml) merged over the default recipe"
        )
        sp.add_argument(
            "--config", type=Path, default=None, metavar="FILE", help="station config (.toml) merged over the default"
        )
        sp.add_argument(
            "--device", default="auto", help="torch device for the model: auto (GPU when there is one), cpu, cuda"
        )

    sub.add_parser("cameras", help="list Basler cameras, real and emulated")
    run = sub.add_parser("run", help="inspect parts headless, then print a summary")
    line_options(run, camera_required=True)
    run.add_argument("--parts", type=int, default=None, metavar="N", help="stop after N parts (default: until Ctrl-C)")
    run.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    run.add_argument(
        "--mode",
        choices=("latency", "throughput"),
        default=None,
        help="latency: one view through the network at a time; throughput: the views waiting, up to --max-batch at once "
        "(default: the config's runner.mode)",
    )
    run.add_argument(
        "--max-batch",
        type=int,
        default=None,
        metavar="N",
        help="throughput mode: the most views the network takes at once (latency mode takes one)",
    )
    run.add_argument(
        "--events",
        type=Path,
        default=None,
        metavar="FILE",
        help="append one JSON object per published verdict (part_id, verdict, time, run_id, seq, score, view, part_verdict), flushed at once",
    )
    train = sub.add_parser(
        "train",
        help="train a model package from a dataset folder, or a candidate from the engineers' labels (--from-db)",
    )
    train.add_argument(
        "--dataset",
        type=Path,
        default=None,
        metavar="DIR",
        help="dataset folder: manifest.csv, or the MVTec AD layout (with --from-db: the current model's data, "
        "default the folder it was trained on when at hand)",
    )
    train.add_argument(
        "--from-db",
        type=Path,
        default=None,
        metavar="DB",
        help="a candidate for --recipe from the current model plus the labelled parts of this database, compared with the "
        "current model on held-back labelled parts; written to the candidates folder unless --out is given",
    )
    train.add_argument(
        "--recipe",
        type=Path,
        default=None,
        metavar="FILE",
        help="with --from-db: the recipe (.toml) whose model to retrain",
    )
    train.add_argument(
        "--progress-json", action="store_true", help="progress as one JSON object per line on stdout (for the GUI)"
    )
    train.add_argument(
        "--kind",
        choices=("anomaly", "segmentation"),
        default=None,
        help="anomaly: PatchCore from good parts only; segmentation: U-Net from defect masks",
    )
    train.add_argument("--out", type=Path, default=None, metavar="PKG", help="model package to write (.lpkg)")
    train.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="segmentation: at most this many epochs (early stopping may end sooner)",
    )
    train.add_argument(
        "--time-limit", type=float, default=None, metavar="S", help="segmentation: stop training after S seconds"
    )
    train.add_argument(
        "--size",
        type=_size,
        default=None,
        metavar="HxW|N",
        help="working size: HxW fixed; N the long side (anomaly) or N x N (segmentation); "
        "a scale factor like 0.75 keeps every part's pixel pitch (segmentation then trains on crops)",
    )
    train.add_argument(
        "--crop",
        type=_crop,
        default=None,
        metavar="HxW",
        help="segmentation: train on crops of this size (defects are local)",
    )
    train.add_argument(
        "--pooling",
        default=None,
        metavar="per_tap|joint",
        help="anomaly: average patch features per backbone tap (default; broad defects) or once after upsampling (finer: tiny defects)",
    )
    train.add_argument(
        "--coreset",
        type=int,
        default=None,
        metavar="N",
        help="anomaly: memory bank rows (default 8192; fewer infer faster, the bank is searched for every patch)",
    )
    train.add_argument(
        "--frozen-blocks",
        type=int,
        default=None,
        metavar="N",
        help="segmentation: encoder blocks kept at their ImageNet weights (default 11: only the stride-32 blocks train; 3 trains from stride 8)",
    )
    train.add_argument(
        "--decoder",
        default=None,
        metavar="conv|separable",
        help="segmentation: decoder blocks, 3x3 convolutions (default) or separable (1x1 + depthwise 3x3: faster on the CPU)",
    )
    train.add_argument("--grey", action="store_true", help="train on grey images (colour inputs are converted)")
    train.add_argument(
        "--false-reject",
        type=float,
        default=0.01,
        metavar="RATE",
        help="calibrate NG to reject this share of good parts (default 0.01)",
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--threads", type=int, default=None, help="torch threads (limit when a line runs beside training)"
    )
    train.add_argument(
        "--beside-line",
        action="store_true",
        help="train beside a running line: one torch thread and the lowest CPU priority (bench/bench_train_beside_line.py)",
    )
    train.add_argument("--device", default="auto", help="auto (a CUDA GPU when there is one), cpu or cuda")
    train.add_argument("--name", default=None, help="model name recorded in the package")
    ev = sub.add_parser("eval", help="evaluate a model package on a labelled dataset folder")
    ev.add_argument("--model", type=Path, required=True, metavar="PKG")
    ev.add_argument("--dataset", type=Path, required=True, metavar="DIR")
    ev.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the metrics as JSON")
    ev.add_argument(
        "--groups", default=None, metavar="G1,G2", help="only the parts of these groups (e.g. the held-out ones)"
    )
    ev.add_argument("--device", default="auto")
    pr = sub.add_parser("predict", help="inspect image files: predictions.csv plus maps and masks as PNG")
    pr.add_argument("--model", type=Path, required=True, metavar="PKG")
    pr.add_argument("--input", type=Path, required=True, nargs="+", metavar="DIR_OR_FILES")
    pr.add_argument("--out", type=Path, required=True, metavar="DIR")
    pr.add_argument("--device", default="auto")
    sh = sub.add_parser("shifts", help="list the shifts in a database with their counts")
    sh.add_argument("--db", type=_db, default=None, metavar="PATH|URL", help=URL_HELP)
    sh.add_argument("--json", action="store_true", help="print the list as JSON")
    rp = sub.add_parser("report", help="a shift's quality report as PDF (and its data as CSV and JSON)")
    rp.add_argument(
        "--db", type=_db, default=None, metavar="PATH|URL", help=URL_HELP + " (a shift there spans its stations)"
    )
    which = rp.add_mutually_exclusive_group(required=True)
    which.add_argument("--shift", type=int, metavar="ID", help="a shift id (see `lepton-inspect shifts`)")
    which.add_argument(
        "--from",
        dest="start",
        metavar="T",
        help="start time, ISO 8601 (without an offset: the line's time zone); needs --to",
    )
    rp.add_argument("--to", dest="end", metavar="T", help="end time, ISO 8601")
    rp.add_argument("--out", type=Path, default=None, metavar="FILE.pdf", help="the PDF to write")
    rp.add_argument(
        "--csv", type=Path, default=None, metavar="FILE", help="also one row per inspection (columns in the README)"
    )
    rp.add_argument("--json", type=Path, default=None, metavar="FILE", help="also the report's figures as JSON")
    rp.add_argument(
        "--config", type=Path, default=None, metavar="FILE", help="station config (.toml): line name and time zone"
    )
    ds = sub.add_parser("dataset", help="datasets from the engineers' labels")
    dsub = ds.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    ex = dsub.add_parser(
        "export", help="the labelled parts as a dataset (manifest + images + masks, and the MVTec AD layout)"
    )
    ex.add_argument("--db", type=_db_file, default=None, metavar="PATH", help=DB_HELP)
    ex.add_argument("--out", type=Path, required=True, metavar="DIR", help="a new (or empty) folder")
    ex.add_argument(
        "--since",
        default=None,
        metavar="T",
        help="only parts inspected from this time (ISO 8601; without an offset: UTC)",
    )
    mo = sub.add_parser("models", help="candidates, promotion and rollback of the model a recipe runs")
    msub = mo.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    for name, text in (
        ("list", "the recipe's model, its promotion history and the candidates with their comparisons"),
        ("promote", "make a candidate the model the recipe runs from its next start"),
        ("rollback", "return the recipe to the model it ran before"),
    ):
        m = msub.add_parser(name, help=text)
        m.add_argument("--db", type=_db_file, default=None, metavar="PATH", help=DB_HELP)
        m.add_argument(
            "--recipe", type=Path, default=None, metavar="FILE", help="recipe (.toml); default: the default recipe"
        )
        if name != "list":
            m.add_argument(
                "--user",
                required=True,
                metavar="NAME",
                help="who decides: a user allowed to promote (password: $LEPTON_PASSWORD or asked)",
            )
            m.add_argument("--comment", default="", help="why (recorded)")
        if name == "promote":
            m.add_argument("--candidate", type=Path, required=True, metavar="PKG", help="the candidate package (.lpkg)")
    us = sub.add_parser("users", help="the station's users and their roles (operator, engineer, qa, admin)")
    usub = us.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    for name, text in (
        ("init", "create the first admin (only while there are no users)"),
        ("add", "add a user (an admin does)"),
        ("list", "the users, their roles and whether they are active"),
        ("set-role", "change a user's role (an admin does)"),
        ("disable", "disable a user (an admin does)"),
        ("enable", "enable a disabled user (an admin does)"),
        ("passwd", "change your password, or (an admin) someone else's with --name"),
    ):
        u = usub.add_parser(name, help=text)
        u.add_argument("--db", type=_db_file, default=None, metavar="PATH", help=DB_HELP)
        if name not in ("init", "list"):
            u.add_argument(
                "--user", required=True, metavar="NAME", help="who does it (password: $LEPTON_PASSWORD or asked)"
            )
        if name not in ("list", "passwd"):
            u.add_argument(
                "--name",
                required=True,
                metavar="NAME",
                help="the account (new password: $LEPTON_NEW_PASSWORD or asked)",
            )
        if name == "passwd":
            u.add_argument(
                "--name", default=None, metavar="OTHER", help="an admin: whose password to set (default: your own)"
            )
        if name in ("add", "set-role"):
            u.add_argument("--role", required=True, metavar="ROLE", help="operator, engineer, qa or admin")
    au = sub.add_parser("audit", help="the audit trail of every change that touches quality")
    asub = au.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    av = asub.add_parser(
        "verify", help="check the hash chain: exit 0 when intact, 1 naming the first changed or missing entry"
    )
    av.add_argument("--db", type=_db_file, default=None, metavar="PATH", help=DB_HELP)
    al = asub.add_parser("list", help="the newest entries")
    al.add_argument("--db", type=_db_file, default=None, metavar="PATH", help=DB_HELP)
    al.add_argument("--limit", type=int, default=50, metavar="N", help="at most N entries, newest first (default 50)")
    rc = sub.add_parser("recipe", help="change a recipe file (audited)")
    rsub = rc.add_subparsers(dest="recipe_command", metavar="ACTION", required=True)
    th = rsub.add_parser("thresholds", help="set a recipe's score thresholds; comments and other keys stay as they are")
    th.add_argument("--db", type=_db_file, default=None, metavar="PATH", help=DB_HELP + " (for the audit trail)")
    th.add_argument(
        "--recipe", type=Path, required=True, metavar="FILE", help="the recipe (.toml); not the packaged default"
    )
    th.add_argument("--user", required=True, metavar="NAME", help="who changes it: a user allowed to change thresholds")
    th.add_argument("--ok-below", default=None, metavar="X", help='OK below this score, or "model" for the model\'s')
    th.add_argument("--ng-at", default=None, metavar="Y", help='NG from this score, or "model" for the model\'s')
    gui = sub.add_parser("gui", help="the operator window (default)")
    line_options(gui, camera_required=False)
    return p


def _size(text: str) -> int | float | tuple[int, int]:
    try:
        if "x" in text.lower():
            h, w = (int(v) for v in text.lower().split("x"))
            if h > 0 and w > 0:
                return (h, w)
        elif "." in text:
            if 0.0 < float(text) <= 4.0:
                return float(text)
        elif int(text) > 0:
            return int(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"size must be HxW, N (long side) or a scale factor like 0.75, not {text!r}")


def _crop(text: str) -> tuple[int, int]:
    size = _size(text) if "x" in text.lower() else None
    if not isinstance(size, tuple):
        raise argparse.ArgumentTypeError(f"crop must be HxW, not {text!r}")
    return size


def _setup_logging(verbose: bool) -> None:
    from inspection.settings.config import data_dir

    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.DEBUG if verbose else logging.WARNING)
    err.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(err)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        folder = data_dir() / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        fh = logging.handlers.RotatingFileHandler(
            folder / "lepton-inspect.log", maxBytes=5_000_000, backupCount=5, encoding="utf-8"
        )
    except OSError as exc:
        log.warning("no log file: %s", exc)
        return
    fh.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(fh)


def cmd_cameras(args: argparse.Namespace) -> int:
    from camera.spec import list_cameras

    cams = list_cameras()
    if not cams:
        print("No Basler cameras found (set PYLON_CAMEMU=N for N emulated ones). Simulated cameras: sim:DIR.")
        return 0
    print(f"{'SPEC':<24} {'KIND':<10} {'MODEL':<20} SERIAL")
    for c in cams:
        print(f"{c.spec:<24} {c.kind:<10} {c.model:<20} {c.serial}")
    print("Also: sim:DIR (simulated camera) and emu:DIR (Basler emulator playing image folder DIR).")
    return 0


class StageProgress:
    """`stage [#####-----] i/n` on stderr, redrawn in place on a terminal; elsewhere (a log file)
    one line when a stage starts and one when it ends."""

    def __init__(self, width: int = 30) -> None:
        self.width, self.stage, self.tty = width, "", sys.stderr.isatty()

    def __call__(self, stage: str, i: int, n: int, detail: str = "") -> None:
        """Step i of n of a stage (n = 0: open-ended, no bar)."""
        changed = stage != self.stage
        if changed and self.stage and self.tty:
            sys.stderr.write("\n")
        self.stage = stage
        filled = int(self.width * i / max(n, 1))
        bar = f" [{'#' * filled}{'-' * (self.width - filled)}] {i}/{n}" if n > 0 else f" {i}"
        line = f"{stage}{bar}" + (f" - {detail}" if detail else "")
        if self.tty:
            sys.stderr.write(f"\r{line}   ")
        elif changed or i == n:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty and self.stage:
            sys.stderr.write("\n")


def cmd_run(args: argparse.Namespace) -> int:
    from inspection.errors import ConfigError

    if args.parts is not None and args.parts < 1:
        raise ConfigError(f"--parts must be at least 1, not {args.parts}.")
    from inspection.line import open_line
    from inspection.plant.verdict_log import VerdictLog

    events = VerdictLog(args.events) if args.events is not None else None  # a bad path fails before anything is opened
    try:
        line = open_line(
            camera_spec=args.camera,
            model=args.model,
            db=args.db,
            recipe=args.recipe,
            config=args.config,
            device=args.device,
            mode=args.mode,
            max_batch=args.max_batch,
            buffer=args.buffer,
        )
    except BaseException:
        if events is not None:
            events.close()
        raise
    if events is not None:
        line.add_result_listener(events)
    forwarder = (
        line.store.forwarder
    )  # with --db URL: the buffer's forwarder to the plant database (closed with the line)
    try:
        line.start(max_parts=args.parts)
        interrupted: list[int] = []  # Ctrl-C: stop between parts (the handler takes no lock: the loop asks)
        previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(1))
        progress = StageProgress() if sys.stderr.isatty() else None
        try:
            while not line.wait(0.5):  # (a PLC's changeover starts a new run; the wait goes on)
                if interrupted:
                    line.request_stop()
                st = line.status()
                if progress is not None and st is not None:
                    hint = "" if args.parts else ", Ctrl-C stops"
                    progress(
                        "inspecting",
                        st.parts,
                        args.parts or 0,
                        f"{st.ok} OK, {st.ng} NG, {st.review} REVIEW, {st.parts_per_s:.1f}/s{hint}",
                    )
            if progress is not None:
                progress.close()
            line.stop()  # Ctrl-C here, while the last rows are committed, changes nothing
        finally:
            signal.signal(signal.SIGINT, previous)
        runs = list(line.run_statuses)  # the run, or the runs that changeovers split it into
        gates = list(line.reject_runs)
    finally:
        line.close()
        if events is not None:
            events.close()
    status = runs[-1]
    total = {
        k: sum(getattr(r, k) for r in runs)
        for k in ("parts", "ok", "ng", "review", "dropped", "failed_grabs", "recorded")
    }
    summary = {
        **total,
        "throughput_pps": round(status.parts_per_s, 3),
        "latency_ms_p50": round(status.latency_ms_p50, 2),
        "latency_ms_p99": round(status.latency_ms_p99, 2),
        "db": str(line.store.path),
        "run_id": status.run_id,
        "state": status.state.value,
        "message": status.message,
        "model": f"{line.inspector.info.name} v{line.inspector.info.version}",
        "cameras": status.cameras,
        "mode": status.mode,
        "hand_off_ms_per_part": round(status.hand_off_ms_per_part, 4),
        "commit_ms_per_row": round(status.commit_ms_per_row, 4),
    }
    summary["recipe"], summary["recipe_version"], summary["runs"] = line.recipe.name, line.recipe_version, len(runs)
    reject = (
        {k: sum(getattr(g, k) for g in gates) for k in ("pulses", "merged", "misses", "output_errors")}
        if gates
        else None
    )
    if reject is not None:
        summary["reject"] = {**reject, "late_pulse_ms_max": round(max(g.late_pulse_ms_max for g in gates), 3)}
    plant = forwarder.status() if forwarder is not None else None
    if plant is not None:
        summary["plant_db"] = dataclasses.asdict(plant)
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{total['parts']} parts: {total['ok']} OK, {total['ng']} NG, {total['review']} REVIEW; "
            f"{total['dropped']} dropped, {total['failed_grabs']} failed grabs; {total['recorded']} recorded in {line.store.path}"
            + (f" ({len(runs)} runs: recipe changeovers)" if len(runs) > 1 else "")
        )
        print(
            f"{status.parts_per_s:.1f} parts/s, latency p50 {status.latency_ms_p50:.0f} ms, p99 {status.latency_ms_p99:.0f} ms"
        )
        if reject is not None:
            print(
                f"reject output: {reject['pulses']} pulses ({reject['merged']} parts in a pulse already on), {reject['misses']} misses"
            )
        if plant is not None:
            print(
                f"plant database {plant.server}: {plant.forwarded} rows forwarded, {plant.backlog} waiting"
                + (f" ({plant.last_error})" if plant.last_error else "")
            )
    if status.state.value == "faulted" or line.failure:
        print(f"error: {line.failure or status.message}", file=sys.stderr)
        return 3
    return 0


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
    print(
        f"wrote {args.out} ({meta['kind']}, classes {', '.join(meta['classes'])}, trained on {meta['training']['device']}) sha256 {sha}"
    )
    print(
        f"thresholds: OK below {t['ok_below']:.4g}, NG at {t['ng_at']:.4g} (calibrated on {meta['calibration']['good_parts']} good parts "
        f"of {meta['calibration']['groups']} groups not trained on)"
    )
    return 0


def _train_candidate(args: argparse.Namespace) -> int:
    import json

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


def comparison_table(summary: dict) -> str:
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
        f"held back: {summary['parts']} labelled parts ({summary['good']} OK, {summary['defective']} NG) of {summary['groups']} parts, "
        f"never trained on",
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
    from inspection.record.store import open_store
    from inspection.settings.config import default_db
    from inspection.settings.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    if args.models_command == "list":
        db = args.db or default_db()
        print(f"recipe {recipe.name} runs {model_registry.model_for(recipe, db)}")
        if db.is_file():
            with _open_record(db) as store:
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
    with open_store(args.db or default_db()) as store, _logged_in(store, args.user) as (user, _):
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


def _metrics_table(m: dict) -> str:
    keys = (
        "image_auroc",
        "pixel_auroc",
        "aupro",
        "f1",
        "false_reject_rate",
        "escape_rate",
        "review_rate",
        "escape_rate_at_5pct_false_rejects",
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
    from inspection.runtime.files import collect_inputs, predict_batch
    from models.package import load_package

    files = collect_inputs(args.input)
    inspector = load_package(args.model, device=args.device)
    progress = StageProgress()
    try:
        summary = predict_batch(inspector, files, args.out, progress=progress)
    finally:
        progress.close()
    print(f"{summary.inspected} of {len(files)} images inspected; verdicts in {summary.csv}")
    if summary.failed:  # the others were inspected; exit 1: some inputs were not
        print(
            f"error: {len(summary.failed)} of {len(files)} images could not be inspected (the error column of {summary.csv} "
            f"says why), the first: {summary.failed[0][1]}",
            file=sys.stderr,
        )
        return 1
    return 0


def _open_record(path: str | Path | None):  # noqa: ANN202
    """The database read-only, so that reports run beside a station that is inspecting."""
    from inspection.record.store import open_record
    from inspection.settings.config import default_db

    return open_record(path or default_db())


def cmd_shifts(args: argparse.Namespace) -> int:
    from inspection.reports.figures import list_shifts

    with _open_record(args.db) as store:
        shifts = list_shifts(store)
    if args.json:
        print(
            json.dumps(
                [{**s, "start_utc": s["start_utc"].isoformat(), "end_utc": s["end_utc"].isoformat()} for s in shifts],
                indent=2,
            )
        )
        return 0
    print(
        f"{'id':>5}  {'shift':<6} {'start (UTC)':<17} {'end (UTC)':<17} {'inspected':>9} {'OK':>7} {'NG':>7} {'REVIEW':>7}"
    )
    for s in shifts:
        print(
            f"{s['id']:>5}  {s['name']:<6} {s['start_utc']:%Y-%m-%d %H:%M} {s['end_utc']:%Y-%m-%d %H:%M} "
            f"{s['inspected']:>9} {s['ok']:>7} {s['ng']:>7} {s['review']:>7}"
        )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from inspection.errors import ConfigError
    from inspection.reports.figures import gather, shift_window, time_window, write_csv, write_json
    from inspection.reports.pdf import write_pdf
    from inspection.settings.config import load_config

    if args.start is not None and args.end is None:
        raise ConfigError("--from needs --to.")
    if args.end is not None and args.start is None:
        raise ConfigError("--to needs --from (or use --shift).")
    if args.out is None and args.csv is None and args.json is None:
        raise ConfigError("Say what to write: --out FILE.pdf, --csv FILE and/or --json FILE.")
    cfg = load_config(args.config)
    for path in (args.out, args.csv, args.json):
        if path is not None:
            _writable(path)
    written = []
    try:
        with _open_record(args.db) as store:
            window = (
                shift_window(store, args.shift)
                if args.shift is not None
                else time_window(args.start, args.end, cfg.shifts.tz)
            )
            data = gather(store, window, cfg.shifts.tz, line=cfg.line if args.config else "")
            if args.csv is not None:
                rows = write_csv(store, data, args.csv)
                written.append(f"{args.csv} ({rows} rows)")
        if args.json is not None:
            write_json(data, args.json)
            written.append(str(args.json))
        if args.out is not None:
            pages = write_pdf(data, args.out)
            written.append(f"{args.out} ({pages} pages)")
    except OSError as exc:  # a full disk, a file that cannot be replaced
        raise ConfigError(f"The report could not be written ({exc.strerror or exc}: {exc.filename or ''}).") from None
    print(
        f"{data.window.title}: {data.inspected} parts ({data.ok} OK, {data.ng} NG, {data.review} REVIEW); wrote "
        + ", ".join(written)
    )
    return 0


def _writable(path: Path) -> None:
    from inspection.errors import ConfigError

    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give a file name.")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"The file {path} exists and cannot be replaced.")
    if not path.parent.is_dir():
        raise ConfigError(f"The folder {path.parent} does not exist.")
    if not os.access(path.parent, os.W_OK):
        raise ConfigError(f"The folder {path.parent} is not writable.")


def cmd_dataset(args: argparse.Namespace) -> int:
    import datetime as dt

    from inspection.engineering.dataset_export import export_dataset
    from inspection.errors import ConfigError

    since = None
    if args.since:
        try:
            t = dt.datetime.fromisoformat(args.since)
        except ValueError:
            raise ConfigError(f"--since {args.since!r} is not an ISO 8601 time such as 2026-11-27T06:00.") from None
        since = (t.astimezone(dt.UTC) if t.tzinfo else t).replace(tzinfo=None)
    with _open_record(args.db) as store:
        try:
            summary = export_dataset(store, args.out, since)
        except OSError as exc:
            raise ConfigError(
                f"The dataset could not be written ({exc.strerror or exc}: {exc.filename or ''})."
            ) from None
    print(
        f"wrote {args.out}: {summary.parts} labelled parts ({summary.good} good, {summary.defect} defective"
        + (f": {', '.join(summary.classes)}" if summary.classes else "")
        + ")"
        + (
            f"; {summary.without_image} labelled parts left out: their images were not kept"
            if summary.without_image
            else ""
        )
        + f"; MVTec AD layout in {args.out / 'mvtec'}"
    )
    return 0


def _password(name: str, *, new: bool = False) -> str:
    """`name`'s password from $LEPTON_PASSWORD, or a new one from $LEPTON_NEW_PASSWORD; else asked on
    the terminal (a new one twice)."""
    from inspection.errors import AuthError

    env, what = ("LEPTON_NEW_PASSWORD", "new password") if new else ("LEPTON_PASSWORD", "password")
    if (value := os.environ.get(env)) is not None:
        return value
    if not sys.stdin.isatty():
        raise AuthError(f"No {what} for {name}: set {env}, or run the command on a terminal to be asked for it.")
    import getpass

    try:
        typed = getpass.getpass(f"{what.capitalize()} for {name}: ")
        if new and getpass.getpass("The same again: ") != typed:
            raise AuthError("The two passwords typed differ; nothing was changed.")
    except EOFError:
        raise AuthError(f"No {what} was typed for {name}; nothing was changed.") from None
    return typed


@contextlib.contextmanager
def _logged_in(store, name: str):  # noqa: ANN001, ANN202
    """Log `name` in for one command (audited login and logout); yields (User, the password given)."""
    from inspection.access import users

    password = _password(name)
    user = users.authenticate(store, name, password)
    try:
        yield user, password
    finally:
        users.logout(store, user, "command done")


def cmd_users(args: argparse.Namespace) -> int:
    from inspection.access import users
    from inspection.record.store import open_store
    from inspection.settings.config import default_db

    if args.users_command == "list":
        with _open_record(args.db) as store:
            accounts = users.list_users(store)
        if not accounts:
            print("No users yet: create the first admin with `lepton-inspect users init --name NAME`.")
        for a in accounts:
            print(
                f"{a.name:<24} {a.role:<9} {'active' if a.active else 'disabled':<9} created {a.created_at:%Y-%m-%d %H:%M} UTC by {a.created_by}"
            )
        return 0
    with open_store(args.db or default_db()) as store:
        if args.users_command == "init":
            users.create_first_admin(store, args.name, _password(args.name, new=True))
            print(f"created admin {args.name.strip()} in {store.path}")
            return 0
        with _logged_in(store, args.user) as (me, password):
            if args.users_command == "add":
                users.create_user(store, me, args.name, args.role, _password(args.name, new=True))
                done = f"added {args.name.strip()} ({args.role})"
            elif args.users_command == "set-role":
                users.set_role(store, me, args.name, args.role)
                done = f"{args.name.strip()} is now {args.role}"
            elif args.users_command in ("disable", "enable"):
                users.set_active(store, me, args.name, args.users_command == "enable")
                done = f"{args.name.strip()} {args.users_command}d"
            else:
                whose = args.name or me.name
                users.set_password(store, me, whose, _password(whose, new=True), old_password=password)
                done = f"password of {whose.strip()} changed"
    print(done)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from inspection.access import audit
    from inspection.errors import ConfigError

    if args.audit_command == "list" and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, not {args.limit}.")
    with _open_record(args.db) as store:
        if args.audit_command == "list":
            for e in reversed(audit.entries(store, args.limit)):
                print(f"{e.id:>7} {e.at:%Y-%m-%d %H:%M:%S} UTC {e.who:<16} {e.action:<20} {e.target} {e.detail_json}")
            return 0
        check = audit.verify(store)
    if not check.ok:
        print(f"error: {check.message}", file=sys.stderr)
        return 1
    print(check.message)
    return 0


def cmd_recipe(args: argparse.Namespace) -> int:
    from inspection.engineering.recipe_edit import set_thresholds
    from inspection.record.store import open_store
    from inspection.settings.config import default_db

    with open_store(args.db or default_db()) as store, _logged_in(store, args.user) as (user, _):
        old, new = set_thresholds(store, user, args.recipe, ok_below=args.ok_below, ng_at=args.ng_at)
    print(
        f"recipe {args.recipe}: OK below {old['ok_below']} -> {new['ok_below']}, NG at {old['ng_at']} -> {new['ng_at']}"
    )
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    from app.gui.main import run_gui

    return run_gui(args, default_camera_spec())


COMMANDS = (
    "cameras",
    "run",
    "train",
    "eval",
    "predict",
    "shifts",
    "report",
    "dataset",
    "models",
    "users",
    "audit",
    "recipe",
    "gui",
)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a in COMMANDS or a in ("-h", "--help") for a in argv):  # no command: the GUI, with these options
        verbose = [a for a in argv if a in ("-v", "--verbose")]
        argv = [*verbose, "gui", *[a for a in argv if a not in verbose]]
    args = _parser().parse_args(argv)
    from inspection.errors import USER_ERRORS

    _setup_logging(args.verbose)
    try:
        commands = {
            "cameras": cmd_cameras,
            "run": cmd_run,
            "train": cmd_train,
            "eval": cmd_eval,
            "predict": cmd_predict,
            "shifts": cmd_shifts,
            "report": cmd_report,
            "dataset": cmd_dataset,
            "models": cmd_models,
            "users": cmd_users,
            "audit": cmd_audit,
            "recipe": cmd_recipe,
            "gui": cmd_gui,
        }
        return commands[args.command](args)
    except USER_ERRORS as exc:
        log.debug("user error", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "error: interrupted before the line started; nothing was inspected."
            if args.command == "run"
            else "error: interrupted; nothing more was done.",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
