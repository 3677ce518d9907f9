"""What the window's recipe and camera pickers show and remember: a camera spec as it reads in the
picker, and the recipe remembered from the last start (while its file still exists)."""

from __future__ import annotations

from pathlib import Path


def camera_label(spec: str) -> str:
    """How a camera spec reads in the picker: `Emulator: samples`, `Simulated: parts`, `Basler 2301...`."""
    kind, _, arg = spec.partition(":")
    names = {"sim": "Simulated", "emu": "Basler emulator", "basler": "Basler"}
    if kind in ("sim", "emu"):
        return f"{names[kind]}: {Path(arg).name}"
    return f"Basler {arg}" if arg else "Basler (first found)"


def recipe_path(value: object) -> Path | None:
    """A remembered recipe path that still exists, else None (the default recipe)."""
    if isinstance(value, str) and value and Path(value).is_file():
        return Path(value)
    return None
