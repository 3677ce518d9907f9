"""Test set-up. Environment first: Qt must never need a display, pylon must see emulated cameras,
and nothing may touch the real user data folder."""

from __future__ import annotations

import os
import tempfile

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any PySide6 import
os.environ["PYLON_CAMEMU"] = "2"  # before pypylon enumerates
os.environ.setdefault("LEPTON_DATA_DIR", tempfile.mkdtemp(prefix="lepton-test-data-"))

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

import resources  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def samples() -> Path:
    return resources.DEMO_SAMPLES


@pytest.fixture(scope="session")
def datasets() -> Path:
    if not (DATASETS / "magnetic_tile" / "manifest.csv").is_file():
        pytest.skip(f"real datasets not found at {DATASETS} (they live in ../shared/datasets)")
    return DATASETS


@pytest.fixture(scope="session")
def demo_inspector():
    from models.package import load_package

    inspector = load_package(resources.DEMO_MODEL, device="cpu")
    inspector.warmup()
    return inspector
