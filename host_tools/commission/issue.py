"""The installer's issuing steps, each safe to run again (commissioning and the demo share them).

Every function looks at what already exists first: a second run (after a failure or a kill)
finishes what the first began and never issues anything twice.
"""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from firmware.core.errors import ConfigError, StateError
from provisioning.devices import issue_device, pin_device
from provisioning.gateway import issue_gateway
from provisioning.site import Site

# Issuance waits mostly on fsync (three durable writes per device): a few threads overlap those
# waits, so 1,000 devices take seconds, not minutes. Each device's files are its own.
ISSUE_THREADS = 8


def open_site(site_dir: Path, level: int | None, name: str) -> tuple[Site, bool]:
    """The site at `site_dir`, created at `level` (default ★★★) when absent; (site, created)."""
    site_dir = Path(site_dir)
    if (site_dir / "site.json").is_file():
        site = Site(site_dir)
        if level is not None and site.level != level:
            raise ConfigError("the site at %s is level %d, not %d" % (site_dir, site.level,
                                                                    level),
                              hint="leave --level out, or use another site directory")
        return site, False
    # What Site.init writes: a run killed during it is simply started again.
    partial = {"offline", "ca", "platform", "allowlist.json", "inventory.jsonl", "issued",
               "commissioning"}
    if site_dir.exists() and any(p.name not in partial for p in site_dir.iterdir()):
        raise StateError("%s exists and is not a provisioning site" % site_dir,
                         "give a new directory for the site, or an existing site")
    return Site.init(site_dir, level or 3, name), True


def allow_models(site: Site, models: Iterable[tuple[str, str, str]]) -> list[str]:
    """Put each (maker, model, transport) on the signed allowlist; returns what was added."""
    added = []
    have = {(e["maker"], e["model"], t) for e in site.allowlist() for t in e["transports"]}
    for maker, model, transport in sorted(set(models)):
        if (maker, model, transport) not in have:
            site.allow(maker, model, transport)
            added.append("%s/%s over %s" % (maker, model, transport))
    return added


def bundle_gateway(bundle: Path) -> dict[str, Any]:
    """Gateway id and board recorded in an issued bundle (its payload, unverified)."""
    try:
        payload = json.loads(Path(bundle).read_text())["payload"]
        return {"gateway_id": payload["gateway_id"], "board": payload["board"]}
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError("is not an installation bundle", str(bundle),
                          hint="remove it to issue a new one")


def gateway_bundle(site: Site, board: str, gw_id: str, out: Path,
                   acl: list[dict[str, Any]] | None = None,
                   release: Path | None = None) -> tuple[Path, bool]:
    """The gateway's signed bundle at `out` (issued when absent); (path, issued now)."""
    out = Path(out)
    if out.is_file():
        have = bundle_gateway(out)
        if have != {"gateway_id": gw_id, "board": board}:
            raise ConfigError("holds the bundle of gateway %s for board %s, not %s for %s"
                              % (have["gateway_id"], have["board"], gw_id, board), str(out))
        return out, False
    if site.issued_path(gw_id).exists():
        raise StateError("gateway %s was issued on this site but its bundle %s is gone"
                         % (gw_id, out),
                         "revoke it (`mamori provision revoke`) and use another --gateway-id")
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    issue_gateway(site, board, gw_id, out, acl=acl, release=release)
    return out, True


def install_tickets(site: Site, devices: Iterable[Any], directory: Path, gateway: str,
                    minutes: int, now: float | None = None) -> dict[str, Path]:
    """A one-time installation ticket (``DIR/<id>.ticket``, its secret and QR code beside it)
    for each device, issued again when missing or expired."""
    import datetime
    import time

    from provisioning.installsecret import issue_install_secret

    out: dict[str, Path] = {}
    for dev in devices:
        path = Path(directory) / (dev.id + ".ticket")
        secret = path.with_name(path.name + ".secret.txt")
        svg = path.with_name(path.name + ".secret.svg")
        try:
            until = json.loads(path.read_text())["payload"]["not_after"]
            fresh = datetime.datetime.fromisoformat(until).timestamp() > (now or time.time())
        except (OSError, ValueError, KeyError, TypeError):
            fresh = False
        if not (fresh and secret.is_file()):
            for p in (path, secret, svg):
                p.unlink(missing_ok=True)
            issue_install_secret(site, gateway, dev.id, path, minutes=minutes)
        out[dev.id] = path
    return out


def device_credentials(site: Site, devices: Iterable[Any], directory: Path,
                       gateway: str | None = None, lost: str = "error") -> dict[str, Path]:
    """Credential files (``DIR/<id>.json``) for each device with id/transport/maker/model
    attributes, issued when absent (IP ones pinned to `gateway`). A device issued before whose
    file is gone: an error, or left out (`lost="skip"`, the demo). IP credentials made before
    pinning get pinned."""
    out: dict[str, Path] = {}
    todo = []
    for dev in devices:
        path = Path(directory) / (dev.id + ".json")
        if not path.is_file():
            if site.issued_path(dev.id).exists():
                if lost == "skip":
                    continue
                raise StateError("device %s was issued on this site but its credential file "
                                 "%s is gone" % (dev.id, path),
                                 "revoke it (`mamori provision revoke`) and give the device a "
                                 "new id in the devices file")
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            todo.append((dev, path))
        elif dev.transport == "ip" and "gateway_pin" not in json.loads(path.read_text()):
            pin_device(site, path, gateway)
        out[dev.id] = path
    with concurrent.futures.ThreadPoolExecutor(ISSUE_THREADS) as pool:
        for fut in [pool.submit(issue_device, site, dev.transport, dev.maker, dev.model, dev.id,
                                path, gateway=gateway, ieee=getattr(dev, "ieee", None) or None)
                    for dev, path in todo]:
            fut.result()
    return out
