"""`mamori provision ...`: site PKI, allowlist, gateway bundles, device credentials, inventory.

Secrets (keys, admin credentials, installation secrets) go only into 0600 files; stdout and
--json output carry paths, ids, serials and fingerprints, never a secret.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from firmware.common.cli import emit
from firmware.core import lanpolicy
from provisioning.devices import issue_device, pin_device
from provisioning.gateway import issue_gateway, parse_grant
from provisioning.installsecret import issue_install_secret
from provisioning.site import TRANSPORTS, Site


def _add(psub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = psub.add_parser(name, help=help_text)
    p.add_argument("dir", metavar="DIR", type=Path, help="the site directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def register(sub: Any) -> None:
    """Add the `provision` command group."""
    p = sub.add_parser("provision")
    ps = p.add_subparsers(dest="provision_cmd", metavar="ACTION")
    ps.required = True

    q = _add(ps, "init-site", "create a site: root + issuing CA, CRL, platform keys, allowlist")
    q.add_argument("--level", type=int, choices=(2, 3), required=True)
    q.add_argument("--name", required=True)
    q.set_defaults(func=_init_site)

    q = _add(ps, "allow", "add a device model to the site's signed allowlist")
    q.add_argument("--maker", required=True)
    q.add_argument("--model", required=True)
    q.add_argument("--transport", choices=TRANSPORTS, required=True)
    q.add_argument("--min-firmware", default="0", help="lowest accepted firmware version")
    q.add_argument("--three-star", default=None, metavar="ACTION[,ACTION]",
                   help="this model's ★★★ actions besides unlock and disarm (e.g. open): "
                        "signed by the platform and checked by the device itself")
    q.add_argument("--constrained-stack", action=argparse.BooleanOptionalAction, default=None,
                   help="the model's TLS stack offers TLS 1.2 only (a microcontroller, e.g. "
                        "MicroPython's Mbed TLS): its devices may use TLS 1.2 with ECDHE + AEAD "
                        "suites on the LAN; every other model needs TLS 1.3")
    q.set_defaults(func=_allow)

    q = _add(ps, "gateway", "issue a gateway identity and its signed installation bundle")
    q.add_argument("--board", required=True)
    q.add_argument("--id", required=True, dest="ident")
    q.add_argument("--out", required=True, type=Path)
    q.add_argument("--request", type=Path, default=None,
                   help="the gateway's enrolment request (CSR flow: keys made on the gateway)")
    q.add_argument("--grant", action="append", default=[], metavar="PRINCIPAL:DEVICE:ACTIONS",
                   help="per-device access control signed into the bundle (default deny), "
                        "e.g. platform:front-door-lock:lock,unlock; repeatable")
    q.add_argument("--release", type=Path, default=None, metavar="REPO_OR_ROOT_JSON",
                   help="the release repository (or its metadata/1.root.json): its trusted "
                        "TUF root goes into the bundle, so the gateway accepts its first update")
    q.set_defaults(func=_gateway)

    q = _add(ps, "device", "issue credentials for one device (allowlisted models only)")
    q.add_argument("--transport", choices=TRANSPORTS, required=True)
    q.add_argument("--maker", required=True)
    q.add_argument("--model", required=True)
    q.add_argument("--id", required=True, dest="ident")
    q.add_argument("--out", required=True, type=Path)
    q.add_argument("--gateway", default=None,
                   help="IP and BLE: the one gateway the device belongs to (pinned in its "
                        "credentials; default: the site's only gateway)")
    q.add_argument("--ieee", default=None, help="Zigbee: the device's EUI-64")
    q.set_defaults(func=_device)

    q = _add(ps, "device-list", "the device list of a MicroPython gateway (HMAC-signed: "
                                "certificate hashes, revocations, allowlist)")
    q.add_argument("--gateway", required=True, help="the MicroPython gateway")
    q.add_argument("--out", required=True, type=Path)
    q.set_defaults(func=_device_list)

    q = _add(ps, "revoke", "revoke a gateway or device (re-signs the CRL with the next number)")
    q.add_argument("--id", required=True, dest="ident")
    q.add_argument("--reason", default="unspecified")
    q.set_defaults(func=_revoke)

    q = _add(ps, "pin", "pin IP credentials issued before pinning to one gateway of the site")
    q.add_argument("--credentials", required=True, type=Path, metavar="FILE")
    q.add_argument("--gateway", default=None, help="the gateway (default: the only one)")
    q.set_defaults(func=_pin)

    q = _add(ps, "inventory", "who was issued what, when, by whom (no secrets)")
    q.set_defaults(func=_inventory)

    q = _add(ps, "install-secret", "one-time secret binding a device to a gateway for a window")
    q.add_argument("--gateway", required=True)
    q.add_argument("--device", required=True)
    q.add_argument("--minutes", type=int, default=10)
    q.add_argument("--out", required=True, type=Path)
    q.set_defaults(func=_install_secret)


def _init_site(args: argparse.Namespace) -> int:
    site = Site.init(args.dir, args.level, args.name)
    data = {"site": str(site.root), "site_id": site.site_id, "level": site.level,
            "name": site.name, "root_fingerprint": site.meta["root_fingerprint"]}
    emit(data, args.json,
         "site %s (%s, level %d) created in %s\nroot CA fingerprint %s\n"
         "move %s offline; it is only needed to re-issue the site CA"
         % (site.name, site.site_id, site.level, site.root, data["root_fingerprint"],
            site.root / "offline/root-ca.key"))
    return 0


def _allow(args: argparse.Namespace) -> int:
    extra = None if args.three_star is None else [a.strip() for a in args.three_star.split(",")
                                                  if a.strip()]
    entry = Site(args.dir).allow(args.maker, args.model, args.transport, args.min_firmware,
                                 extra, args.constrained_stack)
    emit(entry, args.json, "allowed %s/%s over %s (LAN: %s or later)"
         % (args.maker, args.model, ", ".join(entry["transports"]),
            lanpolicy.floor_for(entry)))
    return 0


def _gateway(args: argparse.Namespace) -> int:
    acl = [parse_grant(g) for g in args.grant]
    res = issue_gateway(Site(args.dir), args.board, args.ident, args.out, args.request, acl,
                        release=args.release)
    emit(res, args.json,
         "gateway %s: bundle %s (0600, keys %s)\ninitial admin credential written once to %s "
         "(0600): hand it to the installer, then delete the file\n"
         "install with the root fingerprint %s"
         % (res["gateway_id"], res["bundle"], res["key_origin"], res["admin_credential_file"],
            res["root_fingerprint"]))
    return 0


def _device(args: argparse.Namespace) -> int:
    res = issue_device(Site(args.dir), args.transport, args.maker, args.model, args.ident,
                       args.out, gateway=args.gateway, ieee=args.ieee)
    text = "device %s (%s/%s over %s): credentials in %s (0600), serial %s%s" % (
        res["device_id"], res["maker"], res["model"], res["transport"], res["credentials"],
        res["serial"], ", pinned to gateway " + res["gateway_id"] if res.get("gateway_id") else "")
    mpy = res.get("micropython")
    if mpy:
        text += ("\nfor a MicroPython device: %s, %s (key, 0600), %s (site CA), %s"
                 % (mpy["der"]["certificate"], mpy["der"]["private_key"], mpy["der"]["ca"],
                    mpy["descriptor"]))
    emit(res, args.json, text)
    return 0


def _device_list(args: argparse.Namespace) -> int:
    from provisioning.devicelist import write_list

    res = write_list(Site(args.dir), args.gateway, args.out)
    emit(res, args.json, "device list #%d for gateway %s: %d device(s), %d revoked, in %s\n"
         "deliver it to the board: `mamori flash deploy --board B --port P --device-list %s`"
         % (res["number"], res["gateway_id"], res["devices"], res["revoked"],
            res["device_list"], res["device_list"]))
    return 0


def _revoke(args: argparse.Namespace) -> int:
    rec = Site(args.dir).revoke(args.ident, args.reason)
    data = {"id": args.ident, "revoked": rec["revoked"], "serials": rec.get("serials", []),
            "crl_number": rec["crl_number"], "crl": str(Path(args.dir) / "ca/crl.pem")}
    emit(data, args.json, "revoked %s (%d serials): CRL number %d in %s\n"
         "deliver it: `mamori platform revocations --broker URL --site %s` (or offline: "
         "`mamori-gateway crl install --state-dir DIR %s`)"
         % (args.ident, len(data["serials"]), data["crl_number"], data["crl"], args.dir,
            data["crl"]))
    return 0


def _pin(args: argparse.Namespace) -> int:
    res = pin_device(Site(args.dir), args.credentials, args.gateway)
    emit(res, args.json, "device %s pinned to gateway %s (%s)"
         % (res["device_id"], res["gateway_id"], res["credentials"]))
    return 0


def _inventory(args: argparse.Namespace) -> int:
    site = Site(args.dir)
    rows = site.inventory()
    lines = ["%-25s %-10s %-22s %-22s %s" % ("when", "by", "action", "subject", "details")]
    for r in rows:
        extra = ", ".join("%s=%s" % (k, r[k]) for k in sorted(r)
                          if k not in ("at", "by", "action", "subject", "site_id"))
        lines.append("%-25s %-10s %-22s %-22s %s" % (r["at"][:25], r["by"], r["action"],
                                                     r["subject"], extra))
    emit({"site_id": site.site_id, "level": site.level, "name": site.name, "entries": rows},
         args.json, "\n".join(lines))
    return 0


def _install_secret(args: argparse.Namespace) -> int:
    res = issue_install_secret(Site(args.dir), args.gateway, args.device, args.out,
                               args.minutes)
    emit(res, args.json,
         "ticket %s for device %s on gateway %s, valid until %s\n"
         "the secret (code + QR) is in %s and %s (0600): give it to the installer once"
         % (res["ticket"], res["device_id"], res["gateway_id"], res["not_after"],
            res["secret_file"], res["qr_svg"]))
    return 0
