"""No user mistake ends in a traceback: EVERY verb of `mamori`, `mamori-gateway` and
`mamori-device` is run, as a user would, with a missing file, a wrong path, a bad value and a
closed output pipe. Each must end with a one-line error (non-zero exit) — never a traceback.

The table below lists every verb; a test checks it covers every verb the CLIs declare, so a new
verb cannot be added without its mistakes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.common.cli import build_parser
from tests.conftest import ROOT, require

MISSING, WRONG, BAD, PIPE = "missing file", "wrong path", "bad value", "closed pipe"
M = "{t}/missing/nothing.json"  # a file that does not exist
D = "{t}/adir"  # a directory where a file is expected
F = "{t}/afile.txt"  # a regular file where a directory is expected (or junk where JSON is)
U = "{t}/afile.txt/sub/out.json"  # an output path under a regular file

# (program, verb words): [(mistake, arguments after the verb words)]
CASES: dict[tuple[str, ...], list[tuple[str, list[str]]]] = {
    ("mamori", "boards", "list"): [(BAD, ["--no-such-option"]), (PIPE, ["--json"])],
    ("mamori", "boards", "show"): [(BAD, ["toaster"]), (MISSING, [M]), (PIPE, ["sim"])],
    ("mamori", "commission"): [
        (MISSING, ["{t}/site", "--board", "sim", "--target", "{t}/st", "--devices", M]),
        (WRONG, ["{t}/site2", "--board", "sim", "--target", F, "--devices", "{t}/dev.json"]),
        (BAD, ["{t}/site3", "--board", "sim", "--target", "{t}/st", "--devices",
               "{t}/dev.json", "--timeout", "-1"]),
        (BAD, ["{t}/site4", "--board", "toaster", "--admin", "https://127.0.0.1:9",
               "--devices", "{t}/dev.json"]),
        (BAD, ["{t}/site5", "--board", "sim", "--admin", "http://x", "--devices",
               "{t}/dev.json"]),
        (BAD, ["{t}/site6", "--board", "sim", "--target", "{t}/st", "--devices",
               "{t}/typo.json"]),
        (PIPE, ["--help"])],
    ("mamori", "commissioning", "verify"): [
        (MISSING, [M, "--key", M]), (WRONG, [D, "--key", D]), (BAD, [F, "--key", F]),
        (PIPE, ["--help"])],
    ("mamori", "demo"): [(WRONG, ["--state-dir", F, "--prepare-only"]),
                         (BAD, ["--state-dir", "{t}/demo", "--sim-devices", "5000"]),
                         (PIPE, ["--help"])],
    ("mamori", "flash", "deploy"): [
        (MISSING, ["--board", "pico-w", "--port", "/dev/nonexistent-tty", "--unsigned-dev-build"]),
        (BAD, ["--board", "toaster", "--port", "/dev/null"]), (PIPE, ["--help"])],
    ("mamori", "flash", "image"): [
        (MISSING, ["--board", "rpi4", "--out", "{t}/x.img", "--bundle", M,
                   "--unsigned-dev-build"]),
        (WRONG, ["--board", "rpi4", "--out", U, "--unsigned-dev-build"]),
        (BAD, ["--board", "rpi4", "--out", "{t}/y.img", "--size-mib", "-5",
               "--unsigned-dev-build"]), (PIPE, ["--help"])],
    ("mamori", "flash", "verify"): [
        (MISSING, ["--board", "rpi4", "--image", M]), (WRONG, ["--board", "rpi4", "--image", D]),
        (BAD, ["--board", "toaster"]), (PIPE, ["--help"])],
    ("mamori", "logs", "verify"): [(MISSING, [M]), (WRONG, [F]), (BAD, [D, "--heads", F]),
                                   (PIPE, ["--help"])],
    ("mamori", "logs", "show"): [(MISSING, [M]), (WRONG, [F]), (BAD, [D, "--since", "soon"]),
                                 (PIPE, ["--help"])],
    ("mamori", "logs", "export"): [(MISSING, [M, "--format", "csv"]),
                                   (WRONG, [D, "--format", "csv", "-o", U]),
                                   (BAD, [D, "--format", "xml"]), (PIPE, ["--help"])],
    ("mamori", "logs", "import"): [(MISSING, ["--site", M, "--inbox", "{t}/inbox", M]),
                                   (WRONG, ["--site", F, "--inbox", U, F]),
                                   (BAD, ["--site", D, "--inbox", D, F]), (PIPE, ["--help"])],
    ("mamori", "platform", "revocations"): [
        (MISSING, ["--broker", "mqtts://127.0.0.1:9", "--site", M]),
        (BAD, ["--broker", "http://nope", "--site", D]),
        (BAD, ["--broker", "mqtts://127.0.0.1:9", "--site", D, "--every", "-5"]),
        (PIPE, ["--help"])],
    ("mamori", "platform", "watch"): [
        (MISSING, ["--broker", "mqtts://127.0.0.1:9", "--site", M]),
        (WRONG, ["--broker", "mqtts://127.0.0.1:9", "--site", F]),
        (BAD, ["--broker", "http://nope", "--site", D]), (PIPE, ["--help"])],
    ("mamori", "platform", "command"): [
        (MISSING, ["--broker", "mqtts://127.0.0.1:9", "--site", M, "--gateway", "g",
                   "--device", "d", "--action", "unlock"]),
        (WRONG, ["--broker", "mqtts://127.0.0.1:9", "--site", F, "--gateway", "g",
                 "--device", "d", "--action", "unlock"]),
        (BAD, ["--broker", "mqtts://127.0.0.1:9", "--site", D, "--gateway", "g",
               "--device", "d", "--action", "unlock", "--ttl", "-3"]), (PIPE, ["--help"])],
    ("mamori", "platform", "selftest-request"): [
        (MISSING, ["--broker", "mqtts://127.0.0.1:9", "--site", M, "--gateway", "g"]),
        (BAD, ["--broker", "ftp://x", "--site", D, "--gateway", "g"]), (PIPE, ["--help"])],
    ("mamori", "platform", "log-request"): [
        (MISSING, ["--broker", "mqtts://127.0.0.1:9", "--site", M, "--gateway", "g"]),
        (BAD, ["--broker", "mqtts://", "--site", D, "--gateway", "g"]), (PIPE, ["--help"])],
    ("mamori", "provision", "init-site"): [
        (WRONG, [U, "--level", "2", "--name", "x"]), (BAD, ["{t}/s", "--level", "5", "--name",
                                                             "x"]), (PIPE, ["--help"])],
    ("mamori", "provision", "allow"): [
        (MISSING, [M, "--maker", "a", "--model", "b", "--transport", "ip"]),
        (WRONG, [F, "--maker", "a", "--model", "b", "--transport", "ip"]),
        (BAD, [D, "--maker", "a", "--model", "b", "--transport", "wifi"]), (PIPE, ["--help"])],
    ("mamori", "provision", "gateway"): [
        (MISSING, [M, "--board", "sim", "--id", "g", "--out", "{t}/g.bundle"]),
        (WRONG, [D, "--board", "sim", "--id", "g", "--out", U]),
        (BAD, [D, "--board", "sim", "--id", "../g", "--out", "{t}/g.bundle"]),
        (PIPE, ["--help"])],
    ("mamori", "provision", "device"): [
        (MISSING, [M, "--transport", "ip", "--maker", "a", "--model", "b", "--id", "d",
                   "--out", "{t}/d.json"]),
        (BAD, [D, "--transport", "ip", "--maker", "a", "--model", "b", "--id", "a/b",
               "--out", "{t}/d.json"]), (PIPE, ["--help"])],
    ("mamori", "provision", "device-list"): [
        (MISSING, [M, "--gateway", "g", "--out", "{t}/l.json"]),
        (WRONG, [F, "--gateway", "g", "--out", "{t}/l.json"]),
        (BAD, [D, "--gateway", "../g", "--out", "{t}/l.json"]), (PIPE, ["--help"])],
    ("mamori", "provision", "revoke"): [(MISSING, [M, "--id", "d"]), (WRONG, [F, "--id", "d"]),
                                        (PIPE, ["--help"])],
    ("mamori", "provision", "pin"): [(MISSING, [M, "--credentials", M]),
                                     (WRONG, [F, "--credentials", D]), (PIPE, ["--help"])],
    ("mamori", "provision", "inventory"): [(MISSING, [M]), (WRONG, [F]), (PIPE, ["--help"])],
    ("mamori", "provision", "install-secret"): [
        (MISSING, [M, "--gateway", "g", "--device", "d", "--out", "{t}/t.json"]),
        (BAD, [D, "--gateway", "g", "--device", "d", "--out", "{t}/t.json", "--minutes",
               "0"]), (PIPE, ["--help"])],
    ("mamori", "push"): [
        (MISSING, [M, "--board", "sim", "--gateways", M, "--url", "https://x"]),
        (WRONG, [F, "--board", "sim", "--gateways", D, "--url", "https://x"]),
        (BAD, [D, "--board", "sim", "--gateways", F, "--url", "https://x", "--waves", "a,b"]),
        (PIPE, ["--help"])],
    ("mamori", "release", "init"): [(WRONG, [U]), (BAD, ["{t}/r", "--root-keys", "0"]),
                                    (PIPE, ["--help"])],
    ("mamori", "release", "publish"): [
        (MISSING, [M, "--board", "sim", "--version", "1.0", M]),
        (WRONG, [F, "--board", "sim", "--version", "1.0", F]),
        (BAD, [D, "--board", "sim", "--version", "not a version", D]), (PIPE, ["--help"])],
    ("mamori", "release", "lock"): [
        (BAD, ["--arch", "aarch64", "--python", "3.x", "--glibc", "2.36"]),
        (BAD, ["--arch", "aarch64", "--python", "3.11", "--glibc", "new"]), (PIPE, ["--help"])],
    ("mamori", "release", "payload"): [(BAD, ["--board", "toaster", "--out", "{t}/p"]),
                                       (WRONG, ["--board", "rpi4", "--out", U]),
                                       (PIPE, ["--help"])],
    ("mamori", "release", "rotate-key"): [(MISSING, [M, "--role", "root"]),
                                          (BAD, [D, "--role", "emperor"]), (PIPE, ["--help"])],
    ("mamori", "release", "history"): [(MISSING, [M]), (WRONG, [F]), (PIPE, ["--help"])],
    ("mamori", "release", "serve"): [(MISSING, [M]), (BAD, [D, "--port", "99999"]),
                                     (PIPE, ["--help"])],
    ("mamori", "risk", "score"): [(BAD, ["AV:X"]), (BAD, ["nonsense"]),
                                  (PIPE, ["AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H/LP:Y/II:H"])],
    ("mamori", "risk", "register"): [
        (MISSING, [M]), (WRONG, [D]), (BAD, [F]),
        (PIPE, ["host_tools/risk/examples/door-lock.toml"])],
    ("mamori", "scan"): [(MISSING, ["--board", "sim", "--advisories", M]),
                         (WRONG, ["--board", "sim", "--out", U]),
                         (BAD, ["--board", "toaster"]), (PIPE, ["--help"])],
    ("mamori", "trace"): [(BAD, ["--id", "NOPE-1"]), (PIPE, [])],
    ("mamori-gateway", "admin", "set-password"): [(MISSING, ["--state-dir", M]),
                                                  (WRONG, ["--state-dir", F]), (PIPE, ["--help"])],
    ("mamori-gateway", "admin", "status"): [(MISSING, ["--state-dir", M]),
                                            (WRONG, ["--state-dir", F]),
                                            (BAD, ["--state-dir", D, "--board", "toaster"]),
                                            (PIPE, ["--help"])],
    ("mamori-gateway", "commission"): [(MISSING, ["--state-dir", M]),
                                       (WRONG, ["--state-dir", F]),
                                       (BAD, ["--state-dir", D, "--level", "9"]),
                                       (PIPE, ["--help"])],
    ("mamori-gateway", "enrol"): [(WRONG, ["--state-dir", F, "--id", "g", "--out", "{t}/r"]),
                                  (BAD, ["--state-dir", D, "--id", "../x", "--out", "{t}/r"]),
                                  (PIPE, ["--help"])],
    ("mamori-gateway", "firewall", "render"): [(BAD, ["--board", "toaster"]),
                                               (MISSING, ["--board", M]),
                                               (PIPE, ["--board", "sim"])],
    ("mamori-gateway", "firewall", "apply"): [(BAD, ["--board", "toaster"]),
                                              (BAD, ["--board", "sim"]), (PIPE, ["--help"])],
    ("mamori-gateway", "firewall", "check"): [(BAD, ["--board", "toaster"]),
                                              (PIPE, ["--help"])],
    ("mamori-gateway", "reset"): [(MISSING, ["--resale", "--state-dir", M, "--yes"]),
                                  (WRONG, ["--resale", "--state-dir", F, "--yes"]),
                                  (BAD, ["--resale", "--state-dir", D]), (PIPE, ["--help"])],
    ("mamori-gateway", "run"): [
        (MISSING, ["--board", "sim", "--state-dir", "{t}/g", "--bundle", M]),
        (WRONG, ["--board", "sim", "--state-dir", F, "--duration", "1"]),
        (BAD, ["--board", "sim", "--state-dir", "{t}/g2", "--duration", "nan"]),
        (BAD, ["--board", "rpi4", "--state-dir", "{t}/g3"]),
        (BAD, ["--board", "sim", "--state-dir", "{t}/g4", "--lan-port", "70000"]),
        (PIPE, ["--help"])],
    ("mamori-gateway", "selftest"): [(MISSING, ["--state-dir", M]), (WRONG, ["--state-dir", F]),
                                     (BAD, ["--state-dir", D, "--only", "nope.check"]),
                                     (PIPE, ["--help"])],
    ("mamori-gateway", "crl", "install"): [(MISSING, ["--state-dir", M, M]),
                                           (WRONG, ["--state-dir", F, D]),
                                           (BAD, ["--state-dir", D, F]), (PIPE, ["--help"])],
    ("mamori-gateway", "status"): [(MISSING, ["--state-dir", M]), (WRONG, ["--state-dir", F]),
                                   (BAD, ["--state-dir", D, "--events", "-4"]),
                                   (PIPE, ["--help"])],
    ("mamori-gateway", "tuf-client"): [(MISSING, ["--metadata-dir", M, "init", M]),
                                       (WRONG, ["--metadata-dir", F, "init", D]),
                                       (BAD, ["--metadata-dir", D, "init", F]),
                                       (PIPE, ["--help"])],
    ("mamori-gateway", "update"): [(MISSING, ["--state-dir", "{t}/u", "--from", M, "--console"]),
                                   (WRONG, ["--state-dir", F, "--trust-root", D]),
                                   (BAD, ["--state-dir", D, "--trust-root", F]),
                                   (PIPE, ["--help"])],
    ("mamori-gateway", "usb", "evaluate"): [(MISSING, ["--policy", M]),
                                            (WRONG, ["--sysfs", F]),
                                            (BAD, ["--board", "toaster"]),
                                            (PIPE, ["--help"])],
    ("mamori-gateway", "usb", "learn"): [(WRONG, ["--sysfs", "{t}", "--out", U]),
                                         (MISSING, ["--sysfs", M, "--out", "{t}/r.conf"]),
                                         (PIPE, ["--help"])],
    ("mamori-gateway", "usb", "check"): [(MISSING, ["--policy", M]), (WRONG, ["--policy", D]),
                                         (BAD, ["--policy", F]), (PIPE, ["--help"])],
    ("mamori-gateway", "usb", "commit"): [(MISSING, ["--policy", M]), (WRONG, ["--policy", D]),
                                          (BAD, ["--policy", F]), (PIPE, ["--help"])],
    ("mamori-gateway", "usb", "maintenance"): [
        (MISSING, ["open", "--operator", "x", "--credential-file", M]),
        (BAD, ["close", "../x"]), (PIPE, ["list", "--help"])],
    ("mamori-gateway", "zigbee", "permit"): [(MISSING, ["--credentials", M]),
                                             (WRONG, ["--credentials", D]),
                                             (BAD, ["--credentials", F, "--seconds", "-1"]),
                                             (PIPE, ["--help"])],
    ("mamori-gateway", "zigbee", "sim-join"): [(MISSING, ["--state-dir", M, "--ieee", "00"]),
                                               (BAD, ["--state-dir", D, "--ieee", "zz"]),
                                               (WRONG, ["--state-dir", D, "--credentials", F]),
                                               (PIPE, ["--help"])],
    ("mamori-device",): [(MISSING, ["--credentials", M, "--gateway", "127.0.0.1:9"]),
                         (WRONG, ["--credentials", D, "--gateway", "127.0.0.1:9"]),
                         (BAD, ["--credentials", F, "--gateway", "nowhere"]),
                         (BAD, ["--credentials", F, "--gateway", "127.0.0.1:9",
                                "--interval", "nan"]),
                         (MISSING, ["--credentials", F, "--gateway", "127.0.0.1:9", "--ticket",
                                    M]),
                         (PIPE, ["--help"])],
}
UNSHARE = shutil.which("unshare") or "unshare"
MODULES = {"mamori": "host_tools.cli.main", "mamori-gateway": "firmware.gateway.cli.main",
           "mamori-device": "firmware.device.cli"}


def _declared() -> set[tuple[str, ...]]:
    from firmware.gateway import cli as gateway_verbs
    from host_tools import cli as host_verbs

    out: set[tuple[str, ...]] = {("mamori-device",)}
    for prog, pkg in (("mamori", host_verbs), ("mamori-gateway", gateway_verbs)):
        for verb in pkg.VERBS:
            parser = build_parser(prog, "", pkg, [verb])
            sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            inner = [a for a in sub.choices[verb]._actions
                     if isinstance(a, argparse._SubParsersAction)]
            if inner:
                out |= {(prog, verb, name) for name in inner[0].choices}
            else:
                out.add((prog, verb))
    return out


def _world(t: Path) -> None:
    (t / "adir").mkdir()
    (t / "afile.txt").write_text("not what you think {\n")
    (t / "dev.json").write_text('{"devices": [{"id": "d1", "maker": "A", "model": "B", '
                                '"transport": "ip"}]}')
    (t / "typo.json").write_text('{"devices": [{"id": "d1", "maker": "A", "modle": "B", '
                                 '"transport": "ip"}]}')


def _run(prog: str, argv: list[str], mistake: str, t: Path) -> tuple[int, str, str]:
    env = dict(os.environ, HOME=str(t / "home"), XDG_DATA_HOME=str(t / "home" / "data"),
               MAMORI_STATE_DIR=str(t / "home" / "state"), CI="")
    cmd = [sys.executable, "-m", MODULES[prog], *argv]
    if argv[:1] == ["firewall"] and argv[1:2] != ["render"]:
        # Whatever a regression would do to a firewall happens in a throw-away namespace.
        cmd = [UNSHARE, "--net", "--", *cmd]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if mistake == PIPE:
        assert proc.stdout is not None
        proc.stdout.close()  # the reader went away (`| head`)
        try:
            err = proc.communicate(timeout=120)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            err = proc.communicate()[1]
            return -9, "", err.decode(errors="replace")
        return proc.returncode, "", err.decode(errors="replace")
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return -9, out.decode(errors="replace"), err.decode(errors="replace")
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def test_the_table_covers_every_verb() -> None:
    declared = _declared()
    assert declared - set(CASES) == set(), "verbs without mistakes in the table"
    assert set(CASES) - declared == set(), "the table names verbs that do not exist"
    for verb, cases in CASES.items():
        kinds = {k for k, _ in cases}
        assert PIPE in kinds and len(kinds) >= 2, verb


@pytest.mark.timeout(900)
def test_no_cli_mistake_ends_in_a_traceback(tmp_path: Path) -> None:
    require("netns")  # the firewall verbs run in a throw-away network namespace
    _world(tmp_path)
    jobs = []
    for words, cases in CASES.items():
        for mistake, args in cases:
            argv = [*words[1:], *[a.format(t=tmp_path) for a in args]]
            jobs.append((words, mistake, argv))
    bad: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = pool.map(lambda j: (j, _run(j[0][0], j[2], j[1], tmp_path)), jobs)
        for (words, mistake, argv), (rc, out, err) in results:
            what = "%s %s [%s]" % (words[0], " ".join(argv), mistake)
            if "Traceback (most recent call last)" in err + out or "Exception ignored" in err:
                bad.append("%s: traceback\n%s" % (what, err[-1500:]))
            elif rc == -9:
                bad.append("%s: hung" % what)
            elif mistake != PIPE and rc == 0:
                bad.append("%s: exit 0 for a mistake\n%s" % (what, (out + err)[-500:]))
            elif mistake != PIPE and not ("error:" in err or "usage:" in err):
                bad.append("%s: no error message on stderr (rc %d)\n%s" % (what, rc,
                                                                           (out + err)[-500:]))
    verbs, cases = len(CASES), len(jobs)
    print("\nCLI mistakes: %d verbs, %d cases (%s)" % (verbs, cases, ", ".join(
        "%d %s" % (sum(1 for j in jobs if j[1] == k), k) for k in (MISSING, WRONG, BAD, PIPE))))
    assert not bad, "\n\n".join(bad)


@pytest.mark.parametrize("prog", sorted(MODULES))
def test_unknown_verbs_and_options_are_usage_errors(prog: str, tmp_path: Path) -> None:
    rc, out, err = _run(prog, ["--no-such-option"], BAD, tmp_path)
    assert rc == 2 and "usage:" in err and "Traceback" not in err
