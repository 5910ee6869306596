"""Portable tests: the persisted install state machine and boot selection, crash at every write."""

from firmware.core.errors import StateError
from firmware.core.update import machine as m
from tests.core.portable import raises

TARGET = {"version": "2.0", "length": 10}


def test_happy_path() -> None:
    r = m.start(m.new_record(), TARGET, "a", "b", "1.0")
    assert r["state"] == m.DOWNLOADING
    r = m.advance(r, m.VERIFIED)
    r = m.advance(r, m.WRITTEN)
    sel = m.arm_trial(m.new_selector("a"), "b")
    r = m.advance(r, m.SWITCHED)
    sel, boot = m.select_boot(sel)
    assert boot == {"slot": "b", "in_trial": True, "exhausted": False}
    r, action = m.after_boot(r, boot)
    assert (r["state"], action) == (m.TRIAL, m.A_HEALTH)
    sel = m.commit_trial(sel)
    r = m.advance(r, m.COMMITTED)
    sel, boot = m.select_boot(sel)
    assert boot["slot"] == "b" and not boot["in_trial"]


def test_illegal_transitions_refused() -> None:
    r = m.new_record()
    raises(StateError, m.advance, r, m.WRITTEN)
    raises(StateError, m.advance, r, "bogus")
    busy = m.start(r, TARGET, "a", "b", "1.0")
    raises(StateError, m.start, busy, TARGET, "a", "b", "1.0")
    raises(StateError, m.start, r, TARGET, "a", "a", "1.0")
    raises(StateError, m.arm_trial, m.new_selector("a"), "a")
    raises(StateError, m.commit_trial, m.new_selector("a"))


def test_boot_attempts_run_out() -> None:
    sel = m.arm_trial(m.new_selector("a"), "b", attempts=2)
    r = m.advance(m.advance(m.advance(m.start(m.new_record(), TARGET, "a", "b", "1.0"),
                                      m.VERIFIED), m.WRITTEN), m.SWITCHED)
    for _ in range(2):
        sel, boot = m.select_boot(sel)
        assert boot["slot"] == "b"
        r, action = m.after_boot(r, boot)
        assert action == m.A_HEALTH
    sel, boot = m.select_boot(sel)
    assert boot == {"slot": "a", "in_trial": False, "exhausted": True}
    r, action = m.after_boot(r, boot)
    assert r["state"] == m.ROLLED_BACK and "attempts" in r["reason"]


def _simulate(crash_at: int, healthy: bool) -> tuple:
    """Run the install with a power cut after write number `crash_at`; return final state."""
    disk = {"rec": m.new_record(), "sel": m.new_selector("a"), "slot_b": "old"}
    writes = [0]

    def put(key: str, value: object) -> None:
        if writes[0] == crash_at:
            raise KeyboardInterrupt  # the power cut: this write and later ones never happen
        writes[0] += 1
        disk[key] = value

    def run_once() -> None:
        sel, boot = m.select_boot(disk["sel"])
        put("sel", sel)
        rec, action = m.after_boot(disk["rec"], boot)
        if rec is not disk["rec"]:
            put("rec", rec)
        for _ in range(10):
            rec = disk["rec"]
            if action == m.A_CHECK:
                if rec["state"] == m.IDLE:
                    put("rec", m.start(rec, TARGET, "a", "b", "1.0"))
                    action = m.A_DOWNLOAD
                    continue
                return
            if action == m.A_DOWNLOAD:
                put("rec", m.advance(rec, m.VERIFIED))
                action = m.A_WRITE
            elif action == m.A_WRITE:
                put("slot_b", "partial")
                put("slot_b", "new")
                put("rec", m.advance(rec, m.WRITTEN))
                action = m.A_SWITCH
            elif action in (m.A_SWITCH, m.A_REBOOT):
                if not disk["sel"]["trial"]:
                    put("sel", m.arm_trial(disk["sel"], "b"))
                if rec["state"] == m.WRITTEN:
                    put("rec", m.advance(rec, m.SWITCHED))
                sel, boot = m.select_boot(disk["sel"])
                put("sel", sel)
                rec, action = m.after_boot(disk["rec"], boot)
                if rec is not disk["rec"]:
                    put("rec", rec)
            elif action == m.A_HEALTH:
                if healthy:
                    put("sel", m.commit_trial(disk["sel"]))
                    put("rec", m.advance(rec, m.COMMITTED))
                else:
                    put("sel", m.cancel_trial(disk["sel"]))
                    put("rec", m.advance(rec, m.ROLLED_BACK, reason="health"))
                return

    for _boot in range(8):
        try:
            run_once()
            break
        except KeyboardInterrupt:
            crash_at = -1  # one cut per scenario; then power stays on
            # invariant after the cut: what would boot is complete
            sel, boot = m.select_boot(disk["sel"])
            if boot["slot"] == "b":
                assert disk["slot_b"] == "new", (crash_at, disk)
    return disk["rec"]["state"], m.select_boot(disk["sel"])[1]["slot"], disk["slot_b"]


def test_crash_after_every_write_ends_committed_or_rolled_back() -> None:
    for healthy in (True, False):
        for cut in range(0, 16):
            state, slot, content = _simulate(cut, healthy)
            if healthy:
                assert (state, slot, content) == (m.COMMITTED, "b", "new"), (cut, state, slot)
            else:
                assert state == m.ROLLED_BACK and slot == "a", (cut, state, slot)


def test_one_shot_trial_pending_reboots_again() -> None:
    """Raspberry Pi tryboot: a trial that has not booted yet (attempts left) is retried."""
    from firmware.core.update import machine as mm

    rec = mm.start(mm.new_record(), {"version": "1.1"}, "a", "b", "1.0")
    rec = mm.advance(mm.advance(mm.advance(rec, mm.VERIFIED), mm.WRITTEN), mm.SWITCHED)
    boot = {"slot": "a", "in_trial": False, "exhausted": False, "pending_trial": True}
    assert mm.after_boot(rec, boot) == (rec, mm.A_REBOOT)
    trial = mm.advance(rec, mm.TRIAL)
    assert mm.after_boot(trial, boot) == (trial, mm.A_REBOOT)
    out, action = mm.after_boot(trial, dict(boot, pending_trial=False))
    assert out["state"] == mm.ROLLED_BACK and action == mm.A_CHECK


def test_every_step_before_the_switch_can_be_refused() -> None:
    rec = m.start(m.new_record(), TARGET, "a", "b", "1.0", update_id="u1")
    for state in (m.DOWNLOADING, m.VERIFIED, m.WRITTEN):
        if state != m.DOWNLOADING:
            rec = m.advance(rec, state)
        out = m.refuse(rec, "bad bundle", retry=False)
        assert (out["state"], out["reason"], out["target"], out["id"]) == (
            m.REFUSED, "bad bundle", TARGET, "u1")
        assert out["retry"] is False and m.needs_settling(out)
        assert m.after_boot(out, {"slot": "a", "in_trial": False}) == (out, m.A_CHECK)
        raises(StateError, m.start, out, TARGET, "a", "b", "1.0")  # follow-up steps owed
        raises(StateError, m.refuse, out, "again")
        done = m.settle(out)
        assert not m.needs_settling(done)
        assert m.start(done, TARGET, "a", "b", "1.0")["state"] == m.DOWNLOADING
    switched = m.advance(rec, m.SWITCHED)
    raises(StateError, m.refuse, switched, "too late")  # after the switch: roll back instead
    fresh = m.refuse(m.new_record(), "freeze attack", target={"version": "2.0"})
    assert fresh["state"] == m.REFUSED and fresh["target"] == {"version": "2.0"}


def test_final_records_owe_their_follow_up_steps() -> None:
    rec = m.advance(m.advance(m.advance(m.start(m.new_record(), TARGET, "a", "b", "1.0"),
                                        m.VERIFIED), m.WRITTEN), m.SWITCHED)
    for final in (m.COMMITTED, m.ROLLED_BACK):
        out = m.advance(rec, final)
        assert m.needs_settling(out) and m.settle(out)["settled"] is True
    assert not m.needs_settling(rec)
    raises(StateError, m.settle, rec)
    assert not m.needs_settling({"state": m.COMMITTED})  # records written before this field
