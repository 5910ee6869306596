"""The progress file of one commissioning: what is done, so a second run resumes there.

``SITE/commissioning/<gateway>/progress.json`` (0600) records each step's state (``done``,
``failed`` with the error, ``running`` while it runs: a kill leaves it ``running``, which a
second run simply does again), its duration and the facts later steps need. Every step is
written to be run again safely, so "resume" means "run the steps that are not done".
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

from firmware.common.fsutil import atomic_write
from firmware.core.errors import ConfigError

FORMAT = "mamori-commissioning-progress/1"
FILE = "progress.json"


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


class Progress:
    """Steps and facts of one commissioning run (and of the runs before it)."""

    def __init__(self, directory: Path, run: dict[str, Any]) -> None:
        self.path = Path(directory) / FILE
        self.doc: dict[str, Any] = {"format": FORMAT, "run": run, "started": _now(),
                                    "runs": 0, "steps": {}, "facts": {}}
        if self.path.is_file():
            try:
                old = json.loads(self.path.read_text())
            except (OSError, ValueError):
                old = {}
            if isinstance(old, dict) and old.get("format") == FORMAT:
                if old.get("run") != run:
                    changed = sorted(k for k in set(run) | set(old["run"])
                                     if run.get(k) != old["run"].get(k))
                    raise ConfigError(
                        "this commissioning was started with another %s" % " and ".join(
                            "devices file" if k == "devices" else k for k in changed),
                        str(self.path),
                        hint="run it with the same board, target, gateway id and devices "
                             "file; a changed house needs another --gateway-id (or remove "
                             "the progress file to start over)")
                self.doc = old
        self.doc["runs"] = int(self.doc.get("runs", 0)) + 1
        self.save()

    @property
    def resumed(self) -> bool:
        """Whether an earlier run had already done some steps."""
        return any(s.get("state") == "done" for s in self.doc["steps"].values())

    def done(self, step: str) -> bool:
        """Whether the step finished in this or an earlier run."""
        return self.doc["steps"].get(step, {}).get("state") == "done"

    def step(self, step: str) -> dict[str, Any]:
        """The record of one step ({} when it never ran)."""
        return dict(self.doc["steps"].get(step, {}))

    def begin(self, step: str) -> float:
        """Mark a step running; returns its start time."""
        self.doc["steps"][step] = {"state": "running", "at": _now()}
        self.save()
        return time.monotonic()

    def finish(self, step: str, began: float, detail: str) -> None:
        """Mark a step done."""
        self.doc["steps"][step] = {"state": "done", "at": _now(), "detail": detail,
                                   "seconds": round(time.monotonic() - began, 1)}
        self.save()

    def fail(self, step: str, began: float, error: str) -> None:
        """Mark a step failed with its error."""
        self.doc["steps"][step] = {"state": "failed", "at": _now(), "error": error,
                                   "seconds": round(time.monotonic() - began, 1)}
        self.save()

    def fact(self, key: str, value: Any = None) -> Any:
        """Read a fact (value None) or record one."""
        if value is None:
            return self.doc["facts"].get(key)
        self.doc["facts"][key] = value
        self.save()
        return value

    def save(self) -> None:
        """Write the file atomically (0600: it names files that hold secrets)."""
        atomic_write(self.path, (json.dumps(self.doc, indent=2, sort_keys=True) + "\n").encode(),
                     0o600, dir_mode=0o700)
