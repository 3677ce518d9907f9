"""Packaged resources: default config and recipe, style sheet, demo samples and the demo model.

Found through `importlib.resources`, so they are wherever the package is installed. pylon's
emulator, ONNX Runtime and Qt read them by file name, so the package must be installed as files
(pip's default, editable or not), never imported from an archive.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def on_disk(package: str, name: str) -> Path:
    """The resource `name` of `package` as a path on disk; RuntimeError when it is inside an archive."""
    found = files(package).joinpath(name)
    if not isinstance(found, Path):
        raise RuntimeError(f"{package}/{name} is inside an archive; install lepton-inspect as files.")
    return found


DEMO_MODEL = on_disk(__name__, "models/demo_ballscrew.lpkg")
DEMO_SAMPLES = on_disk(__name__, "samples/ballscrew")
DEFAULT_CONFIG = on_disk(__name__, "default_config.toml")
DEFAULT_RECIPE = on_disk(__name__, "default_recipe.toml")
STYLE_SHEET = on_disk(__name__, "style.qss")
