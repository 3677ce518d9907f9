"""What the command line's commands share: the argument types, the progress bar, the database opened
read-only for reports, and the password and login of a command run by a user."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inspection.access.users import User
    from inspection.record.store import Store


def default_camera_spec() -> str:
    """The camera of a station started without one: Basler's emulator playing the demo samples."""
    import resources

    return f"emu:{resources.DEMO_SAMPLES}"


DB_HELP = "SQLite database; default: lepton.db in the user data folder"
URL_HELP = (
    "SQLite database, or a plant database server's URL (postgresql://user@host:5432/lepton); default: lepton.db in the "
    "user data folder"
)


def db_or_url(text: str) -> str | Path:
    """--db: a SQLite file, or a database server's URL (kept as text)."""
    return text if "://" in text else Path(text)


def db_file(text: str) -> Path:
    """--db of a command that works on the station's own record: a SQLite file only."""
    if "://" in text:
        raise argparse.ArgumentTypeError("this command works on a station's SQLite file, not on a server's URL")
    return Path(text)


def size_arg(text: str) -> int | float | tuple[int, int]:
    """--size: HxW, N (the long side) or a scale factor."""
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


def crop_arg(text: str) -> tuple[int, int]:
    """--crop: HxW."""
    size = size_arg(text) if "x" in text.lower() else None
    if not isinstance(size, tuple):
        raise argparse.ArgumentTypeError(f"crop must be HxW, not {text!r}")
    return size


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


def open_read_only(path: str | Path | None) -> Store:
    """The database read-only, so that reports run beside a station that is inspecting."""
    from inspection.record.opening import open_record
    from inspection.settings.config import default_db

    return open_record(path or default_db(), read_only=True)


def writable(path: Path) -> None:
    """ConfigError unless a file can be written at `path` (before any work is done)."""
    from inspection.errors import ConfigError

    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give a file name.")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"The file {path} exists and cannot be replaced.")
    if not path.parent.is_dir():
        raise ConfigError(f"The folder {path.parent} does not exist.")
    if not os.access(path.parent, os.W_OK):
        raise ConfigError(f"The folder {path.parent} is not writable.")


def ask_password(name: str, *, new: bool = False) -> str:
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
def logged_in(store: Store, name: str) -> Iterator[tuple[User, str]]:
    """Log `name` in for one command (audited login and logout); yields (User, the password given)."""
    from inspection.access import users

    password = ask_password(name)
    user = users.authenticate(store, name, password)
    try:
        yield user, password
    finally:
        users.logout(store, user, "command done")
