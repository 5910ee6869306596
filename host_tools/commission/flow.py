"""`mamori commission`: a blank board to a commissioned gateway, resumable, step by step.

Steps (each safe to run again; the progress file says which are done):

  site        create or open the site; allow the devices' models on its signed allowlist
  bundle      issue the gateway's signed installation bundle (ACL from the devices file,
              the release repository's trusted root when --release is given)
  devices     issue each device's credentials
  install     install the bundle on the board (running blank gateway, state directory, or
              admin API)
  gateway     wait for the gateway to run with that identity; learn its LAN endpoint
  credential  the first-use change of the admin credential (the new one is kept beside the
              bundle, 0600, never printed)
  online      wait until every device of the file is admitted and online
  selftest    the live commissioning self-test, signed by the gateway: all checks must pass
  record      verify the signature here and store the signed record with the site
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from firmware.common.fsutil import atomic_write
from firmware.core.errors import IntegrityError, MamoriError, StateError
from host_tools.commission import devicelist, issue
from host_tools.commission.credential import credential_file
from host_tools.commission.display import Display
from host_tools.commission.progress import Progress
from host_tools.commission.verify import RECORD_FORMAT

POLL_S = 0.5
NUDGE_S = 5.0  # no gateway after this long: tell the installer how to start it
POKE_S = 3.0  # a gateway still blank after this long is handed its bundle again


class Target(Protocol):
    """The board being commissioned (target.py: a state directory; admin.py: the admin API)."""

    def describe(self) -> str: ...  # noqa: D102
    def local_state_dir(self) -> Path | None: ...  # noqa: D102
    def start_hint(self) -> str: ...  # noqa: D102
    def status(self) -> dict[str, Any] | None: ...  # noqa: D102
    def attach(self, bundle: Path) -> None: ...  # noqa: D102
    def install(self, bundle: Path) -> str: ...  # noqa: D102
    def change_credential(self, credential: Path, gateway: str) -> str: ...  # noqa: D102
    def commission(self, level: int) -> dict[str, Any]: ...  # noqa: D102


@dataclass
class Options:
    """What `mamori commission` was asked to do."""

    site: Path
    board: str
    target: Target
    target_name: str
    devices_file: Path
    level: int | None = None
    gateway_id: str = ""
    site_name: str = ""
    release: Path | None = None
    timeout: float = 300.0
    tickets: int = 0  # minutes of a one-time installation ticket per device (0: none)


def default_gateway_id(site: Path) -> str:
    """The gateway id when none is given: the site directory's name, made a valid id."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(site).resolve().name).strip("-.") or "house"
    return (base[:50] + "-gw").lstrip("-._") or "house-gw"


class Commissioning:
    """One run of the steps, with its progress file and display."""

    STEPS = ("site", "bundle", "devices", "install", "gateway", "credential", "online",
             "selftest", "record")
    TITLES = {"site": "site and allowlist", "bundle": "gateway installation bundle",
              "devices": "device credentials", "install": "install the bundle on the board",
              "gateway": "wait for the gateway", "credential": "first-use credential change",
              "online": "wait for the devices", "selftest": "live commissioning self-test",
              "record": "signed commissioning record"}

    def __init__(self, opts: Options, display: Display | None = None) -> None:
        self.o = opts
        self.o.gateway_id = opts.gateway_id or default_gateway_id(opts.site)
        self.devices = devicelist.load(opts.devices_file)
        self.dir = Path(opts.site) / "commissioning" / self.o.gateway_id
        listing = json.dumps([vars(d) for d in self.devices], sort_keys=True).encode()
        self.progress = Progress(self.dir, {"board": opts.board, "target": opts.target_name,
                                            "gateway": self.o.gateway_id,
                                            "devices": hashlib.sha256(listing).hexdigest()[:16]})
        self.display = display or Display(len(self.STEPS))
        self.started = time.monotonic()
        self.site: Any = None

    # -- running -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Every step not done yet, in order; the summary (ok only with a signed record)."""
        failed: MamoriError | None = None
        for n, name in enumerate(self.STEPS, 1):
            if n > self.STEPS.index("bundle") + 1 and self.bundle.is_file():
                self.o.target.attach(self.bundle)
            if self.progress.done(name) and name not in ("gateway", "online"):
                self.display.step(n, self.TITLES[name], resumed=True)
                continue
            self.display.step(n, self.TITLES[name])
            began = self.progress.begin(name)
            try:
                detail = getattr(self, "_" + name)()
            except (MamoriError, OSError) as exc:
                err = exc if isinstance(exc, MamoriError) else StateError(
                    "%s%s" % (exc.strerror or type(exc).__name__,
                              " (%s)" % exc.filename if exc.filename else ""))
                self.progress.fail(name, began, str(err))
                self.display.failed(str(err))
                failed = err
                break
            except KeyboardInterrupt:
                self.progress.fail(name, began, "interrupted")
                self.display.failed("interrupted: run the same command again to resume here")
                raise
            self.progress.finish(name, began, detail)
            self.display.ok(detail, self.progress.step(name)["seconds"])
        doc = self.summary(failed)
        self.display.summary(doc)
        return doc

    def summary(self, failed: MamoriError | None) -> dict[str, Any]:
        """The machine-readable result."""
        steps = [dict(self.progress.step(s), step=s) if self.progress.step(s) else
                 {"step": s, "state": "pending"} for s in self.STEPS]
        record = self.progress.fact("record")
        return {"ok": failed is None and record is not None, "gateway": self.o.gateway_id,
                "site": str(self.o.site), "site_name": self.site.name if self.site else "",
                "level": self.site.level if self.site else (self.o.level or 3),
                "board": self.o.board, "target": self.o.target.describe(),
                "runs": self.progress.doc["runs"], "steps": steps,
                "seconds": round(time.monotonic() - self.started, 1),
                "devices": self.progress.fact("devices_online") or [],
                "record": record, "credential_file": self.progress.fact("credential_file"),
                "error": str(failed) if failed else "",
                "next": ("fix the cause above and run the same command again: it resumes at "
                         "the step that failed") if failed else ""}

    def _wait(self, what: Callable[[], tuple[bool, str]], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            ok, state = what()
            if ok:
                return state
            if time.monotonic() >= deadline:
                raise StateError("gave up waiting after %.0f s: %s" % (timeout, state))
            self.display.waiting(state)
            time.sleep(POLL_S)

    # -- the steps -----------------------------------------------------------------------
    def _site(self) -> str:
        name = self.o.site_name or Path(self.o.site).resolve().name
        self.site, created = issue.open_site(self.o.site, self.o.level, name)
        added = issue.allow_models(self.site, {(d.maker, d.model, d.transport)
                                               for d in self.devices})
        return "%s site %s (%s, level %d); %s" % (
            "created" if created else "opened", self.site.name, self.site.site_id,
            self.site.level, "allowed " + ", ".join(added) if added else "models already "
            "allowed")

    def _open_site(self) -> Any:
        if self.site is None:
            self.site, _ = issue.open_site(self.o.site, self.o.level, "")
        return self.site

    @property
    def bundle(self) -> Path:
        """Where the gateway's bundle is kept in the site."""
        return Path(self.o.site) / "gateways" / (self.o.gateway_id + ".bundle")

    def _bundle(self) -> str:
        site = self._open_site()
        acl = [{"principal": "platform", "device": d.id, "actions": d.actions}
               for d in self.devices if d.actions]
        path, issued = issue.gateway_bundle(site, self.o.board, self.o.gateway_id, self.bundle,
                                            acl, self.o.release)
        self.progress.fact("bundle", str(path))
        self.progress.fact("credential_file", str(credential_file(path)))
        return "%s %s%s" % ("issued" if issued else "kept", path,
                            ", with the release repository's trusted root" if self.o.release
                            else "")

    def _devices(self) -> str:
        creds = issue.device_credentials(self._open_site(), self.devices,
                                         Path(self.o.site) / "devices", self.o.gateway_id)
        self.progress.fact("credentials", {k: str(v) for k, v in creds.items()})
        tickets = self._tickets()
        return "%d device credential files%s in %s (0600)" % (
            len(creds), " and one-time installation tickets (QR)" if tickets else "",
            Path(self.o.site) / "devices")

    def _tickets(self, only: list[str] | None = None) -> dict[str, str]:
        if not self.o.tickets:
            return {}
        devices = [d for d in self.devices if only is None or d.id in only]
        made = issue.install_tickets(self._open_site(), devices, Path(self.o.site) / "devices",
                                     self.o.gateway_id, self.o.tickets)
        tickets = dict(self.progress.fact("tickets") or {})
        tickets.update({k: str(v) for k, v in made.items()})
        self.progress.fact("tickets", tickets)
        return tickets

    def _install(self) -> str:
        self._open_site()
        return self.o.target.install(self.bundle)

    def _gateway(self) -> str:
        hint = self.o.target.start_hint()
        told: list[int] = []
        poked: list[int] = []
        began = time.monotonic()

        def up() -> tuple[bool, str]:
            doc = self.o.target.status()
            if doc is None:
                # A gateway that just installed its bundle restarts: give it a moment.
                if not told and time.monotonic() - began > NUDGE_S:
                    told.append(1)
                    self.display.note("start the gateway on the board: " + hint)
                return False, "no gateway runs on %s yet" % self.o.target.describe()
            gw, lan = doc["gateway"], doc.get("lan") or {}
            if not gw.get("id") and not poked and time.monotonic() - began > POKE_S:
                poked.append(1)  # a blank gateway that started as the bundle was installed
                self.display.note(self.o.target.install(self.bundle))
            if gw.get("id") != self.o.gateway_id or "lan" not in doc:
                return False, "the gateway runs but does not serve as %s yet" % \
                    self.o.gateway_id
            if not lan.get("port"):  # the admin API tells it only after the login
                return True, "gateway %s answers on %s" % (gw["id"],
                                                           self.o.target.describe())
            self.progress.fact("endpoint", "%s:%d" % (lan["host"], lan["port"]))
            return True, "gateway %s serves devices on %s:%d" % (gw["id"], lan["host"],
                                                                lan["port"])

        try:
            return self._wait(up, self.o.timeout)
        except StateError as exc:
            raise StateError(exc.message, "start it: " + hint)

    def _credential(self) -> str:
        path = Path(self.progress.fact("credential_file") or credential_file(self.bundle))
        did = self.o.target.change_credential(path, self.o.gateway_id)
        return ("initial admin credential changed; the new one is in %s" if did == "changed"
                else "admin credential already changed (%s)") % path

    def _zigbee_steps(self, dev_id: str, cred: str) -> str:
        """How a Zigbee device gets in: its install-code window, then its join."""
        where = self.o.target.local_state_dir()
        state = str(where) if where is not None else "STATE_DIR (on the board)"
        steps = ("pair %s (zigbee): open its join window with `mamori-gateway zigbee permit "
                 "--state-dir %s --credentials %s`, then power it on" % (dev_id, state, cred))
        if self.o.board == "sim":
            steps += (" (the sim board's device: `mamori-gateway zigbee sim-join --state-dir %s "
                      "--credentials %s`)" % (state, cred))
        return steps

    def _online(self) -> str:
        lan = (self.o.target.status() or {}).get("lan") or {}
        if lan.get("port"):
            self.progress.fact("endpoint", "%s:%d" % (lan["host"], lan["port"]))
        endpoint = self.progress.fact("endpoint") or "HOST:PORT"
        creds = self.progress.fact("credentials") or {}
        states = {d["id"]: d.get("state") for d in (self.o.target.status() or {}).get(
            "devices", [])}
        tickets = self._tickets([d.id for d in self.devices if states.get(d.id) != "online"])
        for d in self.devices:
            ticket = (" --ticket %s (its secret and QR code: %s.secret.txt, .svg)"
                      % (tickets[d.id], tickets[d.id])) if d.id in tickets else ""
            if d.transport == "ip":
                self.display.note("power on %s: mamori-device --credentials %s --gateway %s%s"
                                  % (d.id, creds.get(d.id, d.id + ".json"), endpoint, ticket))
            elif d.transport == "zigbee":
                self.display.note(self._zigbee_steps(d.id, creds.get(d.id, d.id + ".json")))
            else:
                self.display.note("pair %s (%s) with its credential file %s"
                                  % (d.id, d.transport, creds.get(d.id, "")))
        want = [d.id for d in self.devices]

        def online() -> tuple[bool, str]:
            doc = self.o.target.status() or {}
            states = {d["id"]: d for d in doc.get("devices", [])}
            on = [i for i in want if states.get(i, {}).get("state") == "online"]
            if len(on) == len(want):
                self.progress.fact("devices_online", [
                    {"id": i, "transport": states[i].get("transport"), "state": "online"}
                    for i in want])
                return True, "%d/%d devices online: %s" % (len(on), len(want), ", ".join(on))
            missing = [i for i in want if i not in on]
            why = _refusals(doc, missing)
            return False, "%d/%d devices online; waiting for %s%s" % (
                len(on), len(want), ", ".join(missing), "; " + why if why else "")

        return self._wait(online, self.o.timeout)

    def _selftest(self) -> str:
        from firmware.gateway.selftest.commissioning import CommissioningRefused

        self._open_site()
        try:
            out = self.o.target.commission(self.site.level)
        except CommissioningRefused as exc:
            for r in exc.report["results"]:
                if r["verdict"] in ("fail", "inconclusive"):
                    self.display.note("%s %s: %s" % (r["id"], r["verdict"].upper(),
                                                     "; ".join(r["evidence"][:2])))
                    self.display.note("  %s %s" % ("fix:" if r["verdict"] == "fail" else
                                                   "to decide:",
                                                   r["remediation"] if r["verdict"] == "fail"
                                                   else r["reason"]))
            raise
        report = out["envelope"]["report"]
        pub = self.dir / "report-signing.pub.pem"
        atomic_write(pub, out["public_key"], 0o644, dir_mode=0o700)
        name = "selftest-%s.json" % report["generated_at"].replace(":", "").replace("-", "")
        atomic_write(self.dir / name, (json.dumps(out["envelope"], indent=2,
                                                  ensure_ascii=False) + "\n").encode(),
                     0o644, dir_mode=0o700)
        self.progress.fact("report", str(self.dir / name))
        c = report["summary"]["counts"]
        return "%d pass, %d not applicable: signed by the gateway (key %s)" % (
            c["pass"], c["not_applicable"], out["entry"]["keyid"][:16])

    def _record(self) -> str:
        from firmware.gateway.selftest.report import canonical
        from firmware.gateway.selftest.signing import key_id, verify_report
        from host_tools.commission.verify import load_public

        report_path = Path(self.progress.fact("report") or "")
        pub = load_public(self.dir / "report-signing.pub.pem")
        try:
            envelope = json.loads(report_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IntegrityError("the stored report %s cannot be read (%s)"
                                 % (report_path, type(exc).__name__),
                                 "remove it from the progress file's facts and run again")
        report = verify_report(envelope, pub)
        if report["summary"]["exit_code"] != 0 or report.get("accepted_findings"):
            raise IntegrityError("the signed report is not all-pass")
        site = self._open_site()
        doc = {"format": RECORD_FORMAT, "gateway_id": self.o.gateway_id,
               "site_id": site.site_id, "site_name": site.name, "board": self.o.board,
               "service_level": report["service_level"], "target": self.o.target.describe(),
               "devices": self.progress.fact("devices_online") or [],
               "report": report_path.name,
               "report_sha256": hashlib.sha256(canonical(report)).hexdigest(),
               "verdict": report["summary"]["verdict"], "counts": report["summary"]["counts"],
               "public_key": "report-signing.pub.pem", "keyid": key_id(pub),
               "commissioned_at": report["generated_at"],
               "admin_credential": "changed at commissioning (kept in %s)"
                                   % self.progress.fact("credential_file")}
        path = self.dir / "record.json"
        atomic_write(path, (json.dumps(doc, indent=2) + "\n").encode(), 0o644, dir_mode=0o700)
        site.record("commission", self.o.gateway_id, kind="commissioning",
                    verdict=doc["verdict"], report_sha256=doc["report_sha256"],
                    devices=[d["id"] for d in doc["devices"]])
        self.progress.fact("record", str(path))
        return "signature verified (key %s); record %s" % (doc["keyid"][:16], path)


def _refusals(doc: dict[str, Any], devices: list[str]) -> str:
    """The gateway's latest refusal reason for each waiting device, from its recent events."""
    out = {}
    for e in doc.get("events", []):
        if e.get("kind") == "auth.refused" and e.get("principal") in devices:
            out[e["principal"]] = e.get("reason", "")
    return "; ".join("%s refused: %s" % (k, v) for k, v in sorted(out.items()))
