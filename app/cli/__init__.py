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

The commands by group: line.py (cameras, run, gui), models.py (train, eval, predict, models, recipe),
records.py (shifts, report, dataset, audit), users.py (users); parser.py builds the arguments of each,
common.py holds what they share.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import sys
from collections.abc import Callable

from app.cli import line, models, records, users
from app.cli.common import default_camera_spec
from app.cli.parser import build_parser

__all__ = ["COMMANDS", "default_camera_spec", "main"]

log = logging.getLogger("app.cli")

HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "cameras": line.cmd_cameras,
    "run": line.cmd_run,
    "train": models.cmd_train,
    "eval": models.cmd_eval,
    "predict": models.cmd_predict,
    "shifts": records.cmd_shifts,
    "report": records.cmd_report,
    "dataset": records.cmd_dataset,
    "models": models.cmd_models,
    "users": users.cmd_users,
    "audit": records.cmd_audit,
    "recipe": models.cmd_recipe,
    "gui": line.cmd_gui,
}
COMMANDS = tuple(HANDLERS)


def _setup_logging(verbose: bool) -> None:
    """Warnings (with -v everything) on stderr; everything in the rotating log file of the data folder."""
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a in COMMANDS or a in ("-h", "--help") for a in argv):  # no command: the GUI, with these options
        verbose = [a for a in argv if a in ("-v", "--verbose")]
        argv = [*verbose, "gui", *[a for a in argv if a not in verbose]]
    args = build_parser().parse_args(argv)
    from inspection.errors import USER_ERRORS

    _setup_logging(args.verbose)
    try:
        return HANDLERS[args.command](args)
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
