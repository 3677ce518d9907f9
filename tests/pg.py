"""A private PostgreSQL server for the tests, from the Debian binaries (`apt-get install postgresql`):
its own data folder in a temporary folder, listening on 127.0.0.1 on a free port only, its socket
in that folder too. As root the server runs as the `postgres` user (PostgreSQL refuses root)."""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.fakes import free_port

REQUIRE_ENV = "LEPTON_REQUIRE_POSTGRES"  # "1": the PostgreSQL tests fail, not skip, without the binaries


def find_bin() -> Path | None:
    """The folder of the newest installed PostgreSQL's initdb and pg_ctl, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


class PgServer:
    """One server: `start()`, `stop()` (`mode="immediate"` is a crash), `start()` again, `new_database()`."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        # As root in /tmp: the postgres user must reach the folder (a root-only $TMPDIR would hide it).
        self.root = Path(tempfile.mkdtemp(prefix="lepton-pg-", dir="/tmp" if self._as else None))
        self.data = self.root / "data"
        self.port = free_port()
        if self._as:
            shutil.chown(self.root, "postgres")
        self._names = itertools.count(1)
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    def _pg(self, tool: str, *args: str) -> None:
        proc = subprocess.run([*self._as, str(self.bin / tool), *args], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections=50"
        self._pg(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A new, empty database on the server; its URL."""
        import psycopg

        name = f"lepton_test_{next(self._names)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def close(self) -> None:
        """Stop the server (if running) and remove its folder."""
        try:
            self.stop("immediate")
        except RuntimeError:
            pass  # (already stopped)
        shutil.rmtree(self.root, ignore_errors=True)


def forward_all(store, url: str) -> None:  # noqa: ANN001 (a Store)
    """Forward every row of the station's `store` to the plant database at `url`; return once the server has them."""
    from inspection.record.forwarding import Forwarder

    forwarder = Forwarder(store, url)
    forwarder.start()
    try:
        assert forwarder.sync(120), forwarder.status()
    finally:
        forwarder.close()
