"""Mamori gateway on MicroPython: what a deployed board runs at boot (copied to /main.py).

This file is the bootstrap: it picks the active slot, checks every file of that slot against the
slot's manifest (SHA-256) and only then imports code from the slot. A missing, modified or extra
file means the board refuses to start, prints why and stays at its REPL so an installer can
redeploy. After a clean check it hands over to ``firmware.micropython.app`` (production config,
self-check, gateway loop).
"""

import binascii
import hashlib
import json
import os
import sys

STATE = "/state"
SLOTS = ("/slot_a", "/slot_b", "/lib")
BOOT_LOG = STATE + "/boot.log"


def _say(out, text):
    out("mamori: " + text)


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def sha256_file(path):
    """Hex SHA-256 of a file, or None when it cannot be read."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; MicroPython-friendly
    except OSError:
        return None
    h = hashlib.sha256()
    buf = bytearray(512)
    view = memoryview(buf)
    try:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    finally:
        f.close()
    return binascii.hexlify(h.digest()).decode()


def _walk(d, out):
    try:
        names = os.listdir(d)
    except OSError:
        return out
    for n in names:
        p = d.rstrip("/") + "/" + n
        if os.stat(p)[0] & 0x4000:
            _walk(p, out)
        else:
            out.append(p)
    return out


def select_slot(state=STATE):
    """The active slot: /state/slots.json's choice, else the first slot holding a manifest."""
    sel = _read_json(state + "/slots.json")
    if isinstance(sel, dict) and sel.get("active") in SLOTS:
        return sel["active"]
    for s in SLOTS:
        if _exists(s + "/manifest.json"):
            return s
    return None


def verify(slot):
    """Problems of SLOT against its manifest (empty list: all good) and the manifest."""
    m = _read_json(slot + "/manifest.json")
    if not isinstance(m, dict) or not isinstance(m.get("files"), dict):
        return [slot + "/manifest.json: missing or malformed"], None
    problems = []
    if m.get("slot") != slot:
        problems.append("manifest is for slot %r, found in %s" % (m.get("slot"), slot))
    files = m["files"]
    for path in sorted(files):
        got = sha256_file(path)
        if got is None:
            problems.append(path + ": missing")
        elif got != files[path]:
            problems.append("%s: modified (sha256 %s, manifest %s)" % (path, got, files[path]))
    # An unlisted file in the slot could shadow a module (MicroPython prefers .py to .mpy).
    for path in sorted(_walk(slot, [])):
        if path not in files and path != slot + "/manifest.json":
            problems.append(path + ": not in the manifest")
    return problems, m


def _log(lines):
    try:
        with open(BOOT_LOG, "a") as f:
            for ln in lines:
                f.write(ln + "\n")
    except OSError:
        pass


def use_slot(slot):
    """Import only from SLOT (then the library dir); never from the current directory."""
    for p in list(sys.path):
        if p in ("", ".") or p in SLOTS:
            sys.path.remove(p)
    sys.path.insert(0, slot)
    if "/lib" not in sys.path and slot != "/lib":
        sys.path.append("/lib")


def boot(ticks=None, out=print, state=STATE):
    """Verify the active slot and start the gateway; returns a report dict (for tests)."""
    report = {"ok": False, "slot": None, "refused": None}
    slot = select_slot(state)
    if slot is None:
        report["refused"] = "no slot holds a manifest.json: deploy with `mamori flash deploy`"
    else:
        report["slot"] = slot
        problems, manifest = verify(slot)
        if problems:
            report["refused"] = "%d file(s) do not match the manifest of %s: %s" % (
                len(problems), slot, "; ".join(problems[:5]))
            report["problems"] = problems
        else:
            report["version"] = manifest.get("version")
            report["build"] = manifest.get("build", "unknown")
            _say(out, "slot %s verified (%d files, version %s, %s build)" % (
                slot, len(manifest["files"]), report["version"], report["build"]))
    if report["refused"]:
        _say(out, "refusing to start: " + report["refused"])
        _log(["refused: " + report["refused"]])
        return report
    use_slot(slot)
    from firmware.micropython import app

    report.update(app.run(state, ticks=ticks, out=out))
    return report


if __name__ == "__main__":
    boot()
