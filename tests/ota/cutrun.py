"""Power cuts at exact points: run the real `mamori-gateway update` verb in a light process that
SIGKILLs itself immediately after its Nth persisted write.

A persisted write is every call that changes what survives a crash: ``os.fsync`` and
``os.fdatasync`` of a file, ``os.replace``/``os.rename``, ``os.unlink``/``os.remove`` and
``os.rmdir``. Not counted: fsyncs of directories (nothing a SIGKILL could lose) and of the
temporary files of atomic JSON writes (``.tmp-*``): those only become state at their rename, and a
cut just before the rename equals the cut after the previous write plus an orphaned temporary
file nothing reads. Each event is logged to an events file as ``N CALL NAME STATE`` (STATE: the
update record's state when it happened), so a test learns how many cut points a run has and in
which state each cut fell.

`CutServer` keeps one such process (``python -m tests.ota.cutrun``) that imports the agent once
and forks a child per run: a cut then costs a fork, not an interpreter start, which keeps a few
hundred cuts cheap on a busy machine. The child installs the hooks, runs `mamori-gateway update`
through the command's own entry point and dies by a real SIGKILL. The repository is plain http
on loopback, so the server gets an empty default trust store (OpenSSL's SSL_CERT_FILE and
SSL_CERT_DIR): parsing the system's CA bundle costs ~60 ms of CPU per agent and would verify
nothing here.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # not tests.conftest: the server stays small
HOOKED = ("fsync", "fdatasync", "replace", "rename", "unlink", "remove", "rmdir")


class _Cutter:
    """Counts persisted writes and kills this process at the chosen one."""

    def __init__(self, events: Path, cut_at: int, cut_state: str, state_file: Path,
                 cut_in: tuple[str, int] = ("", 0)) -> None:
        self.fd = os.open(events, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.cut_at = cut_at
        self.cut_state = cut_state
        self.cut_in = cut_in
        self.state_file = state_file
        self.count = 0
        self.in_state: dict[str, int] = {}
        self.state = self._read_state()
        self.real: dict[str, Callable[..., Any]] = {n: getattr(os, n) for n in HOOKED}

    def _read_state(self) -> str:
        try:
            return str(json.loads(self.state_file.read_text()).get("state", "idle"))
        except (OSError, ValueError):
            return "idle"

    def install(self) -> None:
        """Wrap the os functions every writer of the agent (and python-tuf) goes through."""
        for name in HOOKED:
            setattr(os, name, self._wrap(name))

    def _wrap(self, name: str) -> Callable[..., Any]:
        real = self.real[name]

        def hooked(*args: Any, **kwargs: Any) -> Any:
            result = real(*args, **kwargs)
            self._event(name, args)
            return result
        return hooked

    def _event(self, name: str, args: tuple[Any, ...]) -> None:
        if name in ("fsync", "fdatasync"):
            try:
                target = os.readlink("/proc/self/fd/%d" % args[0])
            except OSError:
                target = "?"
            if os.path.isdir(target) or os.path.basename(target).startswith(".tmp-"):
                return
        else:
            target = str(args[1] if name in ("replace", "rename") else args[0])
        wrote_state = name in ("replace", "rename") and target == str(self.state_file)
        if wrote_state:
            self.state = self._read_state()
        self.count += 1
        line = "%d %s %s %s\n" % (self.count, name, os.path.basename(target) or "?", self.state)
        os.write(self.fd, line.encode())
        nth = self.in_state[self.state] = self.in_state.get(self.state, 0) + 1
        if self.count == self.cut_at or (wrote_state and self.state == self.cut_state) or \
                (self.state, nth) == self.cut_in:
            os.kill(os.getpid(), signal.SIGKILL)


def run_verb(argv: list[str]) -> int:
    """`mamori-gateway update ARGV` through the command's own entry point."""
    from firmware.gateway.cli.main import main

    return main(["update", *argv])


def _child(req: dict[str, Any]) -> int:
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    out = os.open(req["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    state_dir = Path(req["argv"][req["argv"].index("--state-dir") + 1])
    cut_in = req.get("cut_in") or ("", 0)
    cutter = _Cutter(Path(req["events"]), int(req.get("cut_at", 0)),
                     str(req.get("cut_state", "")), state_dir / "update" / "state.json",
                     (str(cut_in[0]), int(cut_in[1])))
    cutter.install()
    return run_verb(list(req["argv"]))


def serve() -> None:
    """Fork one child per request line; answer each with its exit status."""
    import gc
    import importlib

    import firmware.gateway.cli.main  # noqa: F401 - imported once, before forking
    import firmware.gateway.cli.update  # noqa: F401
    import firmware.gateway.update.agent  # noqa: F401

    # Modules a run imports lazily (date parsing, IDNA host names, JSON serialiser, ...):
    # imported here once instead of in every child.
    for name in ("_strptime", "encodings.idna", "decimal", "uuid", "platform", "glob", "html",
                 "tuf.api.serialization.json", "firmware.gateway.owner.resale"):
        importlib.import_module(name)
    gc.freeze()  # the collector never walks (so never copies) the pages shared with children

    for line in sys.stdin:
        req = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                code = _child(req)
            except BaseException as exc:  # noqa: BLE001 - report it as the child's output
                import traceback

                traceback.print_exception(exc)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status, usage = os.wait4(pid, 0)
        print(json.dumps({"rc": os.waitstatus_to_exitcode(status),
                          "cpu": usage.ru_utime + usage.ru_stime}),
              flush=True)


class CutServer:
    """The test side: start the fork server, run the update verb with or without a cut."""

    def __init__(self, work: Path) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        empty = work / "no-ca.pem"
        empty.write_text("")
        env = dict(os.environ, SSL_CERT_FILE=str(empty), SSL_CERT_DIR=str(work / "no-ca"))
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.ota.cutrun"], cwd=ROOT,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.runs = 0
        self.cpu = 0.0  # CPU seconds used by the runs (children and their own children)

    def run(self, argv: list[str], cut_at: int = 0, cut_state: str = "",
            cut_in: tuple[str, int] = ("", 0),
            timeout: float = 120.0) -> tuple[int, list[list[str]], str]:
        """(exit code, events [[n, call, name, state]], output) of one run; -9 when cut.

        Cut after write number `cut_at`, or right after the record is written in `cut_state`,
        or after the Nth write made while the record is in state S (`cut_in` = (S, N))."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.runs += 1
        events = self.work / ("events-%d" % self.runs)
        out = self.work / ("out-%d" % self.runs)
        self.proc.stdin.write(json.dumps({"argv": argv, "cut_at": cut_at, "cut_state": cut_state,
                                          "cut_in": list(cut_in), "events": str(events),
                                          "out": str(out)}) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while not select.select([self.proc.stdout], [], [], 0.2)[0]:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError("the update run did not finish in %ss" % timeout)
        answer = json.loads(self.proc.stdout.readline())
        rc = int(answer["rc"])
        self.cpu += float(answer["cpu"])
        rows = [ln.split() for ln in events.read_text().splitlines()] if events.exists() else []
        text = out.read_text(errors="replace")
        events.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
        return rc, rows, text

    def close(self) -> None:
        """Stop the server (its stdin closes, it exits)."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


if __name__ == "__main__":
    serve()
