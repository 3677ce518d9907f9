"""Test set-up. Environment first: Qt must never need a display, pylon must see emulated cameras,
and nothing may touch the real user data folder."""

from __future__ import annotations

import os
import tempfile

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any PySide6 import
os.environ["PYLON_CAMEMU"] = "2"  # before pypylon enumerates
if "LEPTON_DATA_DIR" not in os.environ:
    import atexit
    import shutil

    os.environ["LEPTON_DATA_DIR"] = tempfile.mkdtemp(prefix="lepton-test-data-")
    atexit.register(shutil.rmtree, os.environ["LEPTON_DATA_DIR"], ignore_errors=True)  # no folder left per run

import csv  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
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


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A small dataset in the project format: textured grey parts in 8 groups, some with a bright
    scratch (and its mask). Enough to train and score every model kind in seconds."""
    root = tmp_path_factory.mktemp("tiny")
    (root / "good").mkdir()
    (root / "defect" / "scratch").mkdir(parents=True)
    (root / "masks" / "scratch").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for g in range(8):
        for k in range(6):
            base = (rng.random((64, 64)) * 40 + 100).astype(np.uint8)
            base = cv2.GaussianBlur(base, (5, 5), 1.5)
            defect = k >= 4
            name = f"g{g}_{k}.png"
            if defect:
                mask = np.zeros((64, 64), np.uint8)
                y, x = rng.integers(8, 48, size=2)
                cv2.line(mask, (int(x), int(y)), (int(x) + 12, int(y) + 6), 255, 3)
                base = np.where(mask > 0, 250, base).astype(np.uint8)
                cv2.imwrite(str(root / "defect" / "scratch" / name), base)
                cv2.imwrite(str(root / "masks" / "scratch" / name), mask)
                rows.append([f"defect/scratch/{name}", "defect", "scratch", f"masks/scratch/{name}", 64, 64, f"G{g}"])
            else:
                cv2.imwrite(str(root / "good" / name), base)
                rows.append([f"good/{name}", "good", "good", "", 64, 64, f"G{g}"])
    with (root / "manifest.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "label", "cls", "mask", "width", "height", "group"])
        w.writerows(rows)
    return root


@pytest.fixture(scope="session")
def pg_server():
    """A private PostgreSQL server for the session (tests/pg.py); the PostgreSQL tests skip without
    the binaries, unless LEPTON_REQUIRE_POSTGRES=1 (CI), where they fail."""
    from tests.pg import REQUIRE_ENV, PgServer, find_bin

    bin_dir = find_bin()
    if bin_dir is None:
        reason = "PostgreSQL is not installed (apt-get install postgresql gives initdb and pg_ctl)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires it")
        pytest.skip(reason)
    server = PgServer(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(pg_server) -> str:
    """The URL of a new, empty database on the session's PostgreSQL server."""
    return pg_server.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> str:
    """Which database a test's record is read from: a real SQLite file, or the plant database on PostgreSQL."""
    if request.param == "postgresql":
        request.getfixturevalue("pg_server")
    return request.param


@pytest.fixture
def read_from(backend, request):
    """`read_from(store)`: the store a test reads a station's record from, on the test's backend: the
    station's own SQLite file, or the plant database on PostgreSQL that its rows were forwarded to."""
    from inspection.record.opening import open_record
    from tests.pg import forward_all

    opened = []

    def read(store):
        if backend == "sqlite":
            return store
        url = request.getfixturevalue("pg_url")
        forward_all(store, url)
        opened.append(open_record(url, read_only=True))
        return opened[-1]

    yield read
    for store in opened:
        store.close()
