"""The record's commands: `shifts`, `report` (a shift's PDF, CSV and JSON), `dataset export` (the
labelled parts) and `audit` (verify the hash chain, list the newest entries)."""

from __future__ import annotations

import argparse
import json
import sys

from app.cli.common import open_read_only, writable


def cmd_shifts(args: argparse.Namespace) -> int:
    from inspection.reports.figures import list_shifts

    with open_read_only(args.db) as store:
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
        f"{'id':>5}  {'shift':<6} {'start (UTC)':<17} {'end (UTC)':<17} "
        f"{'inspected':>9} {'OK':>7} {'NG':>7} {'REVIEW':>7}"
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
            writable(path)
    written = []
    try:
        with open_read_only(args.db) as store:
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
    with open_read_only(args.db) as store:
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


def cmd_audit(args: argparse.Namespace) -> int:
    from inspection.access import audit
    from inspection.errors import ConfigError

    if args.audit_command == "list" and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, not {args.limit}.")
    with open_read_only(args.db) as store:
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
