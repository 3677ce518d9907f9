"""The published verdicts as JSON lines (`lepton-inspect run --events FILE`): one object per part
(per view of a part on a station of several cameras, each with the part's verdict), written and
flushed the moment the verdict is published, so that after a crash or a `kill -9` the file says
which verdicts were out - and the record can be checked against it (every part
published more than a commit interval before the end must have its row)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from inspection.errors import ConfigError
from inspection.result import InspectionResult


class VerdictLog:
    """A result listener (it runs on the inspection thread) appending to a file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._fh = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"The events file {self.path} cannot be opened for writing: {exc.strerror}.") from None
        self._lock = threading.Lock()

    def __call__(self, result: InspectionResult) -> None:
        line = json.dumps(
            {
                "part_id": result.part_id,
                "verdict": result.verdict.value,
                "time": time.time(),
                "run_id": result.run_id,
                "seq": result.seq,
                "score": None if result.score != result.score else result.score,
                "view": result.view,
                "part_verdict": (result.part_verdict or result.verdict).value,
            }
        )
        with self._lock:
            if not self._fh.closed:
                self._fh.write(line + "\n")
                self._fh.flush()  # in the kernel's hands: a killed process loses none of it

    def close(self) -> None:
        with self._lock:
            self._fh.close()
