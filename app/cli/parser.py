"""The command line's arguments: one builder for each group of commands (the line, models, records,
users), each command's options in a function of its own."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from app.cli.common import DB_HELP, URL_HELP, crop_arg, db_file, db_or_url, size_arg

if TYPE_CHECKING:
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


# models.training.train's COLD_STARTS and DEFAULT_COLD_START, without importing torch for --help
# (tests/integration/test_cli.py checks that they agree).
COLD_STARTS = ("synthetic", "patchcore")
DEFAULT_COLD_START = "patchcore"


def build_parser() -> argparse.ArgumentParser:
    """`lepton-inspect` with all its commands."""
    p = argparse.ArgumentParser(
        prog="lepton-inspect", description="Lepton Inspect: industrial visual inspection station."
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log debug detail to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("cameras", help="list Basler cameras, real and emulated")
    _add_run(sub)
    _add_train(sub)
    _add_eval_and_predict(sub)
    _add_reports(sub)
    _add_dataset(sub)
    _add_models(sub)
    _add_users(sub)
    _add_audit(sub)
    _add_recipe(sub)
    gui = sub.add_parser("gui", help="the operator window (default)")
    _line_options(gui, camera_required=False)
    return p


# -- the line ------------------------------------------------------------------------------
def _line_options(sp: argparse.ArgumentParser, camera_required: bool) -> None:
    """What opens a line: camera, model, database, recipe, station config, device (run and gui)."""
    from camera.spec import SPEC_HELP

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
        type=db_or_url,
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


def _add_run(sub: Subparsers) -> None:
    run = sub.add_parser("run", help="inspect parts headless, then print a summary")
    _line_options(run, camera_required=True)
    run.add_argument("--parts", type=int, default=None, metavar="N", help="stop after N parts (default: until Ctrl-C)")
    run.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    run.add_argument(
        "--mode",
        choices=("latency", "throughput"),
        default=None,
        help="latency: one view through the network at a time; throughput: the views waiting, up to --max-batch "
        "at once (default: the config's runner.mode)",
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
        help="append one JSON object per published verdict (part_id, verdict, time, run_id, seq, score, view, "
        "part_verdict), flushed at once",
    )


# -- models --------------------------------------------------------------------------------
def _add_train(sub: Subparsers) -> None:
    train = sub.add_parser(
        "train",
        help="train a model package from a dataset folder, or a candidate from the engineers' labels (--from-db)",
    )
    _train_sources(train)
    _train_model_options(train)
    _train_synthetic_options(train)
    _train_calibration_and_machine(train)


def _train_sources(train: argparse.ArgumentParser) -> None:
    """What to train on and what to write: a dataset folder, or a candidate from a database's labels."""
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
        help="a candidate for --recipe from the current model plus the labelled parts of this database, compared "
        "with the current model on held-back labelled parts; written to the candidates folder unless --out is given",
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
        help="anomaly: from good parts only (see --cold-start); segmentation: U-Net from defect masks",
    )
    train.add_argument("--out", type=Path, default=None, metavar="PKG", help="model package to write (.lpkg)")


def _train_synthetic_options(train: argparse.ArgumentParser) -> None:
    """How a product starts from good parts only, and synthetic defects beside the labelled ones."""
    train.add_argument(
        "--cold-start",
        choices=COLD_STARTS,
        default=None,
        help="anomaly: the U-Net trained on synthetic defects drawn on the good parts, or PatchCore's memory bank "
        f"(default {DEFAULT_COLD_START})",
    )
    train.add_argument(
        "--synthetic",
        type=float,
        default=None,
        metavar="SHARE",
        help="segmentation: the share of each batch's defects drawn on good parts besides the labelled ones "
        "(default 0: labelled defects only)",
    )
    train.add_argument(
        "--min-defect-px",
        type=int,
        default=None,
        metavar="N",
        help="U-Net: the product's smallest defect, in pixels at the working size (synthetic defects go down to it)",
    )


def _train_model_options(train: argparse.ArgumentParser) -> None:
    """How long to train, at what size, and the knobs of each kind of model."""
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
        type=size_arg,
        default=None,
        metavar="HxW|N",
        help="working size: HxW fixed; N the long side (anomaly) or N x N (segmentation); "
        "a scale factor like 0.75 keeps every part's pixel pitch (segmentation then trains on crops)",
    )
    train.add_argument(
        "--crop",
        type=crop_arg,
        default=None,
        metavar="HxW",
        help="segmentation: train on crops of this size (defects are local)",
    )
    train.add_argument(
        "--pooling",
        default=None,
        metavar="per_tap|joint",
        help="anomaly: average patch features per backbone tap (default; broad defects) or once after upsampling "
        "(finer: tiny defects)",
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
        help="segmentation: encoder blocks kept at their ImageNet weights (default 11: only the stride-32 blocks "
        "train; 3 trains from stride 8)",
    )
    train.add_argument(
        "--decoder",
        default=None,
        metavar="conv|separable",
        help="segmentation: decoder blocks, 3x3 convolutions (default) or separable (1x1 + depthwise 3x3: faster "
        "on the CPU)",
    )
    train.add_argument("--grey", action="store_true", help="train on grey images (colour inputs are converted)")


def _train_calibration_and_machine(train: argparse.ArgumentParser) -> None:
    """The NG calibration, the seed, the threads and device, and the model's name."""
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
        help="train beside a running line: one torch thread and the lowest CPU priority "
        "(bench/bench_train_beside_line.py)",
    )
    train.add_argument("--device", default="auto", help="auto (a CUDA GPU when there is one), cpu or cuda")
    train.add_argument("--name", default=None, help="model name recorded in the package")


def _add_eval_and_predict(sub: Subparsers) -> None:
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


def _add_models(sub: Subparsers) -> None:
    mo = sub.add_parser("models", help="candidates, promotion and rollback of the model a recipe runs")
    msub = mo.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    for name, text in (
        ("list", "the recipe's model, its promotion history and the candidates with their comparisons"),
        ("promote", "make a candidate the model the recipe runs from its next start"),
        ("rollback", "return the recipe to the model it ran before"),
    ):
        m = msub.add_parser(name, help=text)
        m.add_argument("--db", type=db_file, default=None, metavar="PATH", help=DB_HELP)
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


def _add_recipe(sub: Subparsers) -> None:
    rc = sub.add_parser("recipe", help="change a recipe file (audited)")
    rsub = rc.add_subparsers(dest="recipe_command", metavar="ACTION", required=True)
    th = rsub.add_parser("thresholds", help="set a recipe's score thresholds; comments and other keys stay as they are")
    th.add_argument("--db", type=db_file, default=None, metavar="PATH", help=DB_HELP + " (for the audit trail)")
    th.add_argument(
        "--recipe", type=Path, required=True, metavar="FILE", help="the recipe (.toml); not the packaged default"
    )
    th.add_argument("--user", required=True, metavar="NAME", help="who changes it: a user allowed to change thresholds")
    th.add_argument("--ok-below", default=None, metavar="X", help='OK below this score, or "model" for the model\'s')
    th.add_argument("--ng-at", default=None, metavar="Y", help='NG from this score, or "model" for the model\'s')


# -- records -------------------------------------------------------------------------------
def _add_reports(sub: Subparsers) -> None:
    sh = sub.add_parser("shifts", help="list the shifts in a database with their counts")
    sh.add_argument("--db", type=db_or_url, default=None, metavar="PATH|URL", help=URL_HELP)
    sh.add_argument("--json", action="store_true", help="print the list as JSON")
    rp = sub.add_parser("report", help="a shift's quality report as PDF (and its data as CSV and JSON)")
    rp.add_argument(
        "--db", type=db_or_url, default=None, metavar="PATH|URL", help=URL_HELP + " (a shift there spans its stations)"
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


def _add_dataset(sub: Subparsers) -> None:
    ds = sub.add_parser("dataset", help="datasets from the engineers' labels")
    dsub = ds.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    ex = dsub.add_parser(
        "export", help="the labelled parts as a dataset (manifest + images + masks, and the MVTec AD layout)"
    )
    ex.add_argument("--db", type=db_file, default=None, metavar="PATH", help=DB_HELP)
    ex.add_argument("--out", type=Path, required=True, metavar="DIR", help="a new (or empty) folder")
    ex.add_argument(
        "--since",
        default=None,
        metavar="T",
        help="only parts inspected from this time (ISO 8601; without an offset: UTC)",
    )


def _add_audit(sub: Subparsers) -> None:
    au = sub.add_parser("audit", help="the audit trail of every change that touches quality")
    asub = au.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    av = asub.add_parser(
        "verify", help="check the hash chain: exit 0 when intact, 1 naming the first changed or missing entry"
    )
    av.add_argument("--db", type=db_file, default=None, metavar="PATH", help=DB_HELP)
    al = asub.add_parser("list", help="the newest entries")
    al.add_argument("--db", type=db_file, default=None, metavar="PATH", help=DB_HELP)
    al.add_argument("--limit", type=int, default=50, metavar="N", help="at most N entries, newest first (default 50)")


# -- users ---------------------------------------------------------------------------------
USER_ACTIONS = (
    ("init", "create the first admin (only while there are no users)"),
    ("add", "add a user (an admin does)"),
    ("list", "the users, their roles and whether they are active"),
    ("set-role", "change a user's role (an admin does)"),
    ("disable", "disable a user (an admin does)"),
    ("enable", "enable a disabled user (an admin does)"),
    ("passwd", "change your password, or (an admin) someone else's with --name"),
)


def _add_users(sub: Subparsers) -> None:
    us = sub.add_parser("users", help="the station's users and their roles (operator, engineer, qa, admin)")
    usub = us.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    for name, text in USER_ACTIONS:
        u = usub.add_parser(name, help=text)
        u.add_argument("--db", type=db_file, default=None, metavar="PATH", help=DB_HELP)
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
