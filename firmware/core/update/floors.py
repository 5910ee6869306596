"""The "never go back" floors: lowest installable version and lowest believable time (portable).

A gateway persists these floors. The version floor rises to the highest `min_version` ever seen
in verified release metadata and to every committed version; nothing below it is installed again.
The time floor rises to the newest signed release time seen; boards without a real-time clock may
boot with a clock in the past, so metadata expiry is judged against max(clock, time floor), which
turns a reset clock back into a freeze-attack detector instead of a hole.
"""

from firmware.core.errors import PolicyError
from firmware.core.update.version import compare, newest, parse_version


def new_floors() -> dict:
    """Floors of a factory-fresh gateway."""
    return {"version": "", "time": 0.0, "failed": []}


def reference_time(now: float, floors: dict) -> float:
    """The time used to judge expiry: never earlier than the persisted time floor."""
    floor = floors.get("time", 0.0) or 0.0
    return now if now > floor else floor


def raise_floors(floors: dict, min_version: str = "", released_at: float = 0.0,
                 committed: str = "") -> dict:
    """Return floors raised by verified metadata (min_version, released_at) or a commit."""
    out = {"version": floors.get("version", ""), "time": floors.get("time", 0.0) or 0.0,
           "failed": list(floors.get("failed", []))}
    if min_version:
        parse_version(min_version)
        out["version"] = newest(out["version"], min_version)
    if committed:
        out["version"] = newest(out["version"], committed)
    if released_at and released_at > out["time"]:
        out["time"] = float(released_at)
    return out


def mark_failed(floors: dict, version: str, limit: int = 20) -> dict:
    """Remember a version whose trial boot failed so it is never retried automatically."""
    out = raise_floors(floors)
    if version not in out["failed"]:
        out["failed"].append(version)
    out["failed"] = out["failed"][-limit:]
    return out


def decide(current: str, floors: dict, candidate: str, candidate_min: str = "") -> str:
    """"current" when nothing to do, "install" when allowed; raise PolicyError when refused."""
    parse_version(candidate)
    if candidate_min:
        parse_version(candidate_min)
        if compare(candidate, candidate_min) < 0:
            raise PolicyError(
                "release %s is below its own minimum installable version %s" % (
                    candidate, candidate_min), "the release metadata is inconsistent; refused")
    if current and compare(candidate, current) == 0:
        return "current"
    if current and compare(candidate, current) < 0:
        raise PolicyError("rollback refused: release %s is older than the running %s" % (
            candidate, current), "only newer releases are installed")
    floor = floors.get("version", "")
    if floor and compare(candidate, floor) < 0:
        raise PolicyError("release %s is below the minimum installable version %s" % (
            candidate, floor), "publish a release at or above the floor")
    if candidate in floors.get("failed", []):
        raise PolicyError("release %s already failed its trial boot on this gateway" % candidate,
                          "publish a fixed, newer release")
    return "install"
