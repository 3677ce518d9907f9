"""Changing a recipe's thresholds from the program: checked, atomic, audited.

Only the `ok_below` / `ng_at` keys of the recipe file's `[verdict]` table are rewritten (added when
absent); every other line, comments included, stays as it was. (There is no TOML writer among the
dependencies, and a round trip through one would drop the comments.) The result is read back with
`load_recipe` from a file beside the original before it replaces it (fsync, then os.replace), so a
recipe is never left half written or invalid.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path

import resources
from inspection.access import audit
from inspection.access.users import Permission, User, require
from inspection.errors import ConfigError
from inspection.record.store import Store
from inspection.settings.recipe import load_recipe
from inspection.settings.recipe_folder import recipes_dir

Threshold = float | str  # a score, or "model": the model package's own

_HEADER = re.compile(r"^\s*\[")  # a table or array-of-tables header
_VERDICT = re.compile(r"^\s*\[\s*verdict\s*\]\s*(#.*)?$")
_KEY = re.compile(
    r"""^(?P<lead>\s*(?P<key>[A-Za-z0-9_-]+)\s*=\s*)(?P<value>"[^"]*"|'[^']*'|[^\s#]+)(?P<rest>.*)$""", re.S
)


def set_thresholds(
    store: Store, user: User, recipe_path: Path, *, ok_below: Threshold | None = None, ng_at: Threshold | None = None
) -> tuple[dict[str, Threshold], dict[str, Threshold]]:
    """Set `ok_below` and/or `ng_at` (None: leave it) in the recipe file; PermissionDenied unless
    `user` may change thresholds, ConfigError (one sentence) for the packaged default recipe, a
    value that is not a number or "model", or a result that is not a valid recipe. Audited
    `thresholds_changed`. Returns the (old, new) values."""
    user = require(store, user, Permission.CHANGE_THRESHOLDS)
    path = Path(recipe_path).expanduser().resolve()
    if path == resources.DEFAULT_RECIPE.resolve():
        raise ConfigError(
            f"The packaged default recipe cannot be changed; copy it into the recipes folder ({recipes_dir()}) first."
        )
    wanted = {k: _value(k, v) for k, v in (("ok_below", ok_below), ("ng_at", ng_at)) if v is not None}
    if not wanted:
        raise ConfigError('Say which threshold to set: ok_below and/or ng_at (a score, or "model").')
    before = load_recipe(path)
    old = {"ok_below": _shown(before.ok_below), "ng_at": _shown(before.ng_at)}
    new = {**old, **wanted}
    original = path.read_text(encoding="utf-8")
    text = _edit(original, {k: _toml(v) for k, v in wanted.items()})
    tmp = _write_aside(path, text)
    try:
        try:
            after = load_recipe(tmp)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace(str(tmp), str(path))) from None
        if {"ok_below": _shown(after.ok_below), "ng_at": _shown(after.ng_at)} != new:
            raise ConfigError(
                f"The thresholds of recipe {path} could not be set: its [verdict] table is written in a way "
                "this program does not edit; change it in a text editor."
            )
        try:
            with audit.session(store) as s:
                audit.append(
                    s,
                    who=user.name,
                    action="thresholds_changed",
                    target=f"{before.name} ({path})",
                    detail={"old": old, "new": new},
                )
                os.replace(tmp, path)  # before the commit: a failed replace leaves no entry
        except BaseException:  # the commit failed after the replace: the file goes back, so no change goes unaudited
            if path.read_text(encoding="utf-8") != original:
                os.replace(_write_aside(path, original), path)
            raise
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return old, new


def _value(key: str, value: Threshold) -> Threshold:
    if value == "model":
        return "model"
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise ConfigError(f'verdict.{key} must be a number or "model", not {value!r}.')
    return number


def _shown(value: float | None) -> Threshold:
    return "model" if value is None else value


def _toml(value: Threshold) -> str:
    return '"model"' if value == "model" else repr(float(value))


def _edit(text: str, values: dict[str, str]) -> str:
    """`text` with the given keys of its [verdict] table set (their comments kept), absent ones
    added after the table's last key (a [verdict] table added at the end if there is none)."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if _VERDICT.match(line)), None)
    if start is None:
        tail = "" if not text or text.endswith("\n") else "\n"
        return text + tail + "\n[verdict]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
    end = next((i for i in range(start + 1, len(lines)) if _HEADER.match(lines[i])), len(lines))
    todo, last_key = dict(values), start
    for i in range(start + 1, end):
        m = _KEY.match(lines[i])
        if m is None:
            continue
        last_key = i
        if m["key"] in todo:
            lines[i] = m["lead"] + todo.pop(m["key"]) + m["rest"]
    newline = "\r\n" if lines[start].endswith("\r\n") else "\n"
    lines[last_key + 1 : last_key + 1] = [f"{k} = {v}{newline}" for k, v in todo.items()]
    return "".join(lines)


def _write_aside(path: Path, text: str) -> Path:
    """`text` in a new file beside `path` (same folder, so os.replace is atomic), on disk, with `path`'s mode."""
    tmp = None
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        tmp = Path(name)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o777)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise ConfigError(f"The recipe {path} cannot be rewritten: {exc.strerror or exc}.") from None
    return tmp


def _fsync_dir(folder: Path) -> None:
    """The rename on disk too (POSIX); best effort: the new file is in place either way."""
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
