"""The persisted install state machine and the A/B boot-selector logic (portable, pure).

States: idle -> downloading -> verified -> written -> switched -> trial -> committed | rolled_back,
and `refused` from any step before the switch. Every function takes plain dicts and returns new
ones; the caller persists each result atomically before acting on it. Ordering rule: the boot
selector is the truth about what boots; the record follows it. So after a crash between the two
writes, `after_boot` reconciles the record with what actually booted, and every intermediate
combination has exactly one safe continuation.

A final record (committed, rolled_back, refused) is written with ``settled: False``: the steps
that follow it (history entry, floors, alert, discarding the staging area) are idempotent and
the caller replays them until it writes the record again with ``settled: True``.
"""

from firmware.core.errors import StateError

IDLE = "idle"
DOWNLOADING = "downloading"
VERIFIED = "verified"
WRITTEN = "written"
SWITCHED = "switched"
TRIAL = "trial"
COMMITTED = "committed"
ROLLED_BACK = "rolled_back"
REFUSED = "refused"

STATES = (IDLE, DOWNLOADING, VERIFIED, WRITTEN, SWITCHED, TRIAL, COMMITTED, ROLLED_BACK, REFUSED)
TERMINAL = (IDLE, COMMITTED, ROLLED_BACK, REFUSED)
FINAL = (COMMITTED, ROLLED_BACK, REFUSED)  # final writes owe replayable follow-up steps
# Before the switch nothing boots the new slot, so a refusal only has to drop the staging area.
REFUSABLE = (IDLE, DOWNLOADING, VERIFIED, WRITTEN, COMMITTED, ROLLED_BACK, REFUSED)

TRANSITIONS = {
    IDLE: (DOWNLOADING, REFUSED),
    DOWNLOADING: (DOWNLOADING, VERIFIED, IDLE, REFUSED),
    VERIFIED: (WRITTEN, REFUSED),
    WRITTEN: (SWITCHED, TRIAL, ROLLED_BACK, REFUSED),
    SWITCHED: (TRIAL, COMMITTED, ROLLED_BACK),
    TRIAL: (TRIAL, COMMITTED, ROLLED_BACK),
    COMMITTED: (DOWNLOADING, REFUSED),
    ROLLED_BACK: (DOWNLOADING, REFUSED),
    REFUSED: (DOWNLOADING, REFUSED),
}

# Actions the caller performs next.
A_CHECK = "check"        # idle: look for a new release
A_DOWNLOAD = "download"  # resume the download from chunks_done
A_WRITE = "write"        # (re)write the verified bundle into the inactive slot
A_SWITCH = "switch"      # arm the boot selector for one trial boot of the new slot
A_REBOOT = "reboot"      # reboot into the armed trial slot
A_HEALTH = "health"      # running the trial: run health checks, then commit or roll back

DEFAULT_ATTEMPTS = 3


def new_record() -> dict:
    """The record of a gateway with no update in progress."""
    return {"state": IDLE, "target": None, "slot": "", "from_slot": "", "from_version": "",
            "chunks_done": 0, "reason": "", "id": "", "settled": True}


def advance(record: dict, state: str, **fields: object) -> dict:
    """A copy of record moved to `state` with fields updated; StateError if not allowed."""
    cur = record.get("state", IDLE)
    if state not in STATES:
        raise StateError("unknown update state %r" % state)
    if state not in TRANSITIONS.get(cur, ()):
        raise StateError("update state %s cannot go to %s" % (cur, state),
                         "the persisted update record is inconsistent")
    out = dict(record)
    out["state"] = state
    out["settled"] = state not in FINAL
    for k in fields:
        out[k] = fields[k]
    return out


def start(record: dict, target: dict, from_slot: str, to_slot: str, from_version: str,
          update_id: str = "") -> dict:
    """Begin downloading `target` (verified release info) for the inactive slot."""
    if record.get("state", IDLE) not in TERMINAL:
        raise StateError("an update is already in progress (%s)" % record.get("state"))
    if needs_settling(record):
        raise StateError("the previous update's final steps are still owed",
                         "replay them (history, floors, alert) before starting another")
    if to_slot == from_slot:
        raise StateError("the inactive slot cannot be the running slot")
    out = new_record()
    return advance(out, DOWNLOADING, target=target, slot=to_slot, from_slot=from_slot,
                   from_version=from_version, chunks_done=0, reason="", id=update_id)


def refuse(record: dict, reason: str, target: object = None, update_id: str = "",
           retry: bool = True) -> dict:
    """The record after a refusal at a step before the switch (check, download, write).

    `target` is the refused release (None: keep the record's own, or none at all when the
    refusal came before any release was chosen); `retry` False marks a signed release whose
    own content is defective, so the same release is not downloaded again.
    """
    state = record.get("state", IDLE)
    if state not in REFUSABLE:
        raise StateError("update state %s cannot be refused: it has switched slots" % state,
                         "a failing trial rolls back instead")
    if needs_settling(record):
        raise StateError("the previous update's final steps are still owed",
                         "replay them before recording a refusal")
    if target is None and state not in TERMINAL:
        target = record.get("target")
    return advance(record, REFUSED, reason=reason, target=target, chunks_done=0,
                   id=update_id or record.get("id", ""), retry=retry)


def needs_settling(record: dict) -> bool:
    """True when a final record was written but its follow-up steps are not all done."""
    return record.get("state", IDLE) in FINAL and record.get("settled") is False


def settle(record: dict) -> dict:
    """The final record with its follow-up steps done."""
    if record.get("state", IDLE) not in FINAL:
        raise StateError("only a final update record is settled")
    out = dict(record)
    out["settled"] = True
    return out


def new_selector(slot: str) -> dict:
    """A boot selector that boots `slot` with no trial armed."""
    return {"default": slot, "trial": "", "attempts_left": 0, "booted": slot, "in_trial": False}


def arm_trial(selector: dict, slot: str, attempts: int = DEFAULT_ATTEMPTS) -> dict:
    """Selector that boots `slot` for at most `attempts` trial boots, then falls back."""
    if slot == selector["default"]:
        raise StateError("cannot trial-boot the default slot")
    out = dict(selector)
    out["trial"] = slot
    out["attempts_left"] = attempts
    return out


def commit_trial(selector: dict) -> dict:
    """Selector after a healthy trial: the trial slot becomes the default."""
    if not selector.get("trial"):
        raise StateError("no trial boot to commit")
    out = dict(selector)
    out["default"] = selector["trial"]
    out["trial"] = ""
    out["attempts_left"] = 0
    out["in_trial"] = False
    return out


def cancel_trial(selector: dict) -> dict:
    """Selector after a failed trial: the default slot boots again."""
    out = dict(selector)
    out["trial"] = ""
    out["attempts_left"] = 0
    return out


def select_boot(selector: dict) -> tuple:
    """What the boot loader does: returns (selector to persist BEFORE booting, boot info).

    boot info: {"slot", "in_trial", "exhausted"}. A trial slot boots while attempts remain;
    each boot uses one attempt, so a crash loop in the new image ends on the old one.
    """
    out = dict(selector)
    trial = selector.get("trial", "")
    exhausted = False
    if trial and selector.get("attempts_left", 0) > 0:
        out["attempts_left"] = selector["attempts_left"] - 1
        out["booted"] = trial
        out["in_trial"] = True
    else:
        if trial:
            exhausted = True
            out["trial"] = ""
            out["attempts_left"] = 0
        out["booted"] = selector["default"]
        out["in_trial"] = False
    return out, {"slot": out["booted"], "in_trial": out["in_trial"], "exhausted": exhausted}


def after_boot(record: dict, boot: dict) -> tuple:
    """Reconcile the record with what booted; returns (record, next action)."""
    state = record.get("state", IDLE)
    slot = record.get("slot", "")
    if state in TERMINAL:
        return record, A_CHECK
    if state == DOWNLOADING:
        return record, A_DOWNLOAD
    if state == VERIFIED:
        return record, A_WRITE
    if boot.get("in_trial") and boot.get("slot") == slot:
        if state == TRIAL:
            return record, A_HEALTH
        return advance(record, TRIAL), A_HEALTH
    if boot.get("exhausted"):
        return advance(record, ROLLED_BACK, reason=record.get("reason") or
                       "boot attempts exhausted: the new image never became healthy"), A_CHECK
    if state == WRITTEN:
        return record, A_SWITCH
    if boot.get("slot") == slot:
        # The selector was committed but the record was not yet: the commit happened.
        return advance(record, COMMITTED), A_CHECK
    if boot.get("pending_trial") and state in (SWITCHED, TRIAL):
        # One-shot trial boots (Raspberry Pi tryboot): armed, attempts left, not booted yet.
        return record, A_REBOOT
    if state == SWITCHED:
        # Armed but not yet rebooted into the trial slot.
        return record, A_REBOOT
    return advance(record, ROLLED_BACK, reason=record.get("reason") or
                   "the trial boot ended without a commit"), A_CHECK
