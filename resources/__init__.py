"""Packaged resources: default config and recipe, style sheet, demo samples and the demo model."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEMO_MODEL = ROOT / "models" / "demo_ballscrew.lpkg"
DEMO_SAMPLES = ROOT / "samples" / "ballscrew"
DEFAULT_CONFIG = ROOT / "default_config.toml"
DEFAULT_RECIPE = ROOT / "default_recipe.toml"
STYLE_SHEET = ROOT / "style.qss"
