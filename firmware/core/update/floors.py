"""The "never go back" floors: lowest installable version and lowest believable time (portable).

A gateway persists these floors, and they move only when a release has been fully accepted
(signed, consistent, verified and written; or confirmed as the running latest release), never on
a refusal. The version floor rises to the `min_version` of every accepted release and to every
committed version; nothing below it is installed again. The time floor rises to the signing time
of the newest verified top-level timestamp metadata (never to a delegated role's own fields);
boards without a real-time clock may boot with a clock in the past, so metadata expiry is judged
against max(clock, time floor), which turns a reset clock back into a freeze-attack detector
instead of a hole. A time floor beyond the newest verified timestamp's expiry cannot have come
from verified metadata and is refused.
"""

from firmware.core.errors import PolicyError
from firmware.core.update.version import compare, newest, parse_version

# Field of the top-level timestamp metadata (signed by the timestamp key) carrying the time the
# repository signed it, in whole seconds since the epoch: the only source of the time floor.
SIGNED_AT = "x-mamori-signed-at"


def new_floors() -> dict:
    """Floors of a factory-fresh gateway."""
    return {"version": "", "time": 0.0, "failed": []}


def time_floor(floors: dict, bound: float = 0.0) -> float:
    """The persisted time floor, or 0 when it lies beyond `bound` (the newest verified
    timestamp's expiry, when known): such a floor never came from verified metadata."""
    floor = floors.get("time", 0.0) or 0.0
    if bound and floor > bound:
        return 0.0
    return floor


def reference_time(now: float, floors: dict, bound: float = 0.0) -> float:
    """The time used to judge expiry: never earlier than the (credible) time floor."""
    floor = time_floor(floors, bound)
    return now if now > floor else floor


def raise_floors(floors: dict, min_version: str = "", signed_at: float = 0.0,
                 committed: str = "", time_bound: float = 0.0) -> dict:
    """Return floors raised by an accepted release (min_version, the signing time of the
    verified timestamp metadata) or a commit; a time floor beyond `time_bound` is refused."""
    out = {"version": floors.get("version", ""), "time": time_floor(floors, time_bound),
           "failed": list(floors.get("failed", []))}
    if min_version:
        parse_version(min_version)
        out["version"] = newest(out["version"], min_version)
    if committed:
        out["version"] = newest(out["version"], committed)
    if signed_at and signed_at > out["time"]:
        if time_bound and signed_at > time_bound:
            raise PolicyError("time floor %d is beyond the verified timestamp's expiry %d" % (
                int(signed_at), int(time_bound)), "the timestamp metadata is inconsistent")
        out["time"] = float(signed_at)
    return out


def mark_failed(floors: dict, version: str, limit: int = 20) -> dict:
    """Remember a version whose trial boot failed so it is never retried automatically.

    Versions at or below the version floor are dropped from the list first (the floor already
    refuses them), so the bounded list only ever forgets versions it no longer needs."""
    out = raise_floors(floors)
    floor = out["version"]
    out["failed"] = [v for v in out["failed"] if not floor or compare(v, floor) > 0]
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
