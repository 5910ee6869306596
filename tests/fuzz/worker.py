"""One fuzz target in this process: ``python -m tests.fuzz.worker TARGET SECONDS ENGINE DIR``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.fuzz import engine


def main(argv: list[str]) -> int:
    """Run the target; atheris exits by itself, hypothesis prints its result as JSON."""
    target, seconds, kind, workdir = argv[0], int(argv[1]), argv[2], Path(argv[3])
    workdir.mkdir(parents=True, exist_ok=True)
    if kind == "atheris":
        engine.run_atheris(target, seconds, workdir)
        return 0
    result = engine.run_hypothesis(target, seconds, workdir)
    print(json.dumps({"inputs": result["inputs"], "escapes": len(result["escapes"])}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
