"""Self-test result model (portable): check IDs, requirement IDs, verdicts, summary, exit code.

Verdicts follow ETSI TS 103 701: pass / fail / not_applicable (always with a reason) /
inconclusive. Exit codes follow Lynis/OpenSCAP: 0 all pass, 2 something failed, 1 the test
itself could not run (an inconclusive check counts as "could not run").
"""

from firmware.core.errors import ConfigError

PASS = "pass"  # noqa: S105 (a verdict, not a password)
FAIL = "fail"
NOT_APPLICABLE = "not_applicable"
INCONCLUSIVE = "inconclusive"
VERDICTS = (PASS, FAIL, NOT_APPLICABLE, INCONCLUSIVE)

EXIT_PASS = 0
EXIT_ERROR = 1
EXIT_FAIL = 2

LEVELS = (2, 3)


def _ids(prefix: str, first: int, last: int) -> list:
    return [prefix + str(i) for i in range(first, last + 1)]


# Requirement ID -> lowest service level at which it applies (★ items apply from ★★ on,
# because SR2-H-1 requires them). See spec/requirements.md.
REQUIREMENTS: dict = {}
for _rid in (_ids("SR2-H-", 1, 6) + _ids("R2-", 1, 9) + _ids("C", 1, 11) + _ids("UK", 1, 13)
             + ["SB327-1", "SB327-2"] + _ids("PSTI-", 1, 3)):
    REQUIREMENTS[_rid] = 2
for _rid in _ids("SR3-H-", 1, 9) + ["R3-2", "R3-3", "R3-5", "R3-6", "R3-7", "R3-8"]:
    REQUIREMENTS[_rid] = 3


def requirement_level(req_id: str) -> int:
    """Lowest service level (2 or 3) at which a requirement applies."""
    if req_id not in REQUIREMENTS:
        raise ConfigError("unknown requirement ID " + repr(req_id),
                          hint="use an ID from spec/requirements.md")
    return REQUIREMENTS[req_id]


def check_level(level: int) -> int:
    """Validate a service level (2 = ★★, 3 = ★★★)."""
    if level not in LEVELS:
        raise ConfigError("service level must be 2 or 3, got " + repr(level))
    return level


def applies(requirements: list, level: int) -> bool:
    """A check applies when any requirement it evidences applies at this level."""
    return any(requirement_level(r) <= level for r in requirements)


_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"


def valid_check_id(check_id: object) -> bool:
    """Check IDs are stable dotted lower-case names, e.g. ``secrets.plaintext-keys``."""
    if not isinstance(check_id, str) or not 3 <= len(check_id) <= 64:
        return False
    parts = check_id.split(".")
    if len(parts) < 2:
        return False
    for p in parts:
        if not p or p[0] == "-" or p[-1] == "-":
            return False
        for ch in p:
            if ch not in _ID_CHARS:
                return False
    return True


class Result:
    """The outcome of one check: verdict, evidence and remediation, tied to requirement IDs."""

    def __init__(self, check_id: str, title: str, requirements: list, verdict: str,
                 evidence: "list | None" = None, remediation: str = "",
                 reason: str = "") -> None:
        if not valid_check_id(check_id):
            raise ConfigError("invalid check ID " + repr(check_id))
        if not requirements:
            raise ConfigError("check " + check_id + " names no requirement")
        for r in requirements:
            requirement_level(r)
        if verdict not in VERDICTS:
            raise ConfigError("verdict must be one of " + ", ".join(VERDICTS) + ", got "
                              + repr(verdict))
        if verdict == NOT_APPLICABLE and not reason:
            raise ConfigError("check " + check_id + ": not_applicable needs a reason")
        self.check_id = check_id
        self.title = title
        self.requirements = list(requirements)
        self.verdict = verdict
        self.evidence = [str(e) for e in (evidence or [])]
        self.remediation = remediation
        self.reason = reason

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"id": self.check_id, "title": self.title, "requirements": self.requirements,
                "verdict": self.verdict, "evidence": self.evidence,
                "remediation": self.remediation if self.verdict != PASS else "",
                "reason": self.reason}

    @staticmethod
    def from_dict(d: dict) -> "Result":
        """Rebuild (and re-validate) a result from its JSON form."""
        if not isinstance(d, dict):
            raise ConfigError("a result must be an object")
        return Result(d.get("id"), d.get("title", ""), d.get("requirements") or [],  # type: ignore[arg-type]
                      d.get("verdict"), d.get("evidence"), d.get("remediation", ""),  # type: ignore[arg-type]
                      d.get("reason", ""))


def _worst(verdicts: list) -> str:
    if FAIL in verdicts:
        return FAIL
    if INCONCLUSIVE in verdicts:
        return INCONCLUSIVE
    if PASS in verdicts:
        return PASS
    return NOT_APPLICABLE


def summarise(results: list) -> dict:
    """Counts per verdict, the overall verdict, and a verdict per requirement ID."""
    counts: dict = {}
    for v in VERDICTS:
        counts[v] = 0
    per_req: dict = {}
    for res in results:
        counts[res.verdict] += 1
        for r in res.requirements:
            per_req.setdefault(r, []).append(res.verdict)
    reqs: dict = {}
    for r in per_req:
        reqs[r] = _worst(per_req[r])
    overall = _worst([res.verdict for res in results]) if results else INCONCLUSIVE
    if overall == NOT_APPLICABLE:
        overall = PASS
    return {"counts": counts, "verdict": overall, "requirements": reqs,
            "exit_code": exit_code(results)}


def exit_code(results: list) -> int:
    """0 all pass (or not applicable), 2 something failed, 1 a check could not run."""
    if not results:
        return EXIT_ERROR
    verdicts = [r.verdict for r in results]
    if FAIL in verdicts:
        return EXIT_FAIL
    if INCONCLUSIVE in verdicts:
        return EXIT_ERROR
    return EXIT_PASS


def sort_key(req_id: str) -> tuple:
    """Order requirement IDs the way the catalog lists them (SR2-H-2 before SR2-H-10)."""
    head = req_id.rstrip("0123456789")
    tail = req_id[len(head):]
    return (head, int(tail) if tail else 0)
