"""`mamori release init|publish|lock|payload|rotate-key|history|serve`: signed firmware
releases (TUF), and the wheel locks and application-slot payloads of Linux boards."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from firmware.common.boards import load_board
from firmware.common.cli import emit
from firmware.core.errors import ConfigError
from host_tools.release import appslot, history, wheels
from host_tools.release.bundle import DEFAULT_CHUNK
from host_tools.release.layout import check_payload
from host_tools.release.repo import ReleaseRepo
from host_tools.release.serve import RepoServer
from host_tools.scan.gate import check_scan


def register(sub: Any) -> None:
    """Add the `release` command group."""
    p = sub.add_parser("release")
    rs = p.add_subparsers(dest="release_cmd", metavar="ACTION")
    rs.required = True

    ip = rs.add_parser("init", help="create a release repository and its signing keys")
    ip.add_argument("repo", type=Path, metavar="REPO")
    ip.add_argument("--root-keys", type=int, default=2)
    ip.add_argument("--root-threshold", type=int, default=2)
    ip.add_argument("--json", action="store_true")
    ip.set_defaults(func=_init)

    pp = rs.add_parser("publish", help="build a bundle + SBOM for a board and publish it")
    pp.add_argument("repo", type=Path, metavar="REPO")
    pp.add_argument("--board", required=True)
    pp.add_argument("--version", required=True)
    pp.add_argument("path", type=Path, metavar="PATH",
                    help="payload directory: app/ (every board), os/ and boot/ (Raspberry Pi "
                         "boards); see README, release payload layout")
    pp.add_argument("--changelog", default="")
    pp.add_argument("--min-version", default="", help="minimum installable version from now on")
    pp.add_argument("--scan-report", type=Path, help="the release's scan report (hash is signed)")
    pp.add_argument("--override-scan", metavar="REASON",
                    help="publish although the scan failed or is missing (reason recorded)")
    pp.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK)
    pp.add_argument("--health-check", default="", help="payload-relative health script")
    pp.add_argument("--json", action="store_true")
    pp.set_defaults(func=_publish)

    kp = rs.add_parser("rotate-key", help="replace a role's signing key (old key destroyed)")
    kp.add_argument("repo", type=Path, metavar="REPO")
    kp.add_argument("--role", required=True)
    kp.add_argument("--json", action="store_true")
    kp.set_defaults(func=_rotate)

    hp = rs.add_parser("history", help="what was released when, by whom, for which boards")
    hp.add_argument("repo", type=Path, metavar="REPO")
    hp.add_argument("--json", action="store_true")
    hp.set_defaults(func=_history)

    lp = rs.add_parser("lock", help="pin the firmware's Python dependencies as wheels for a "
                       "board CPU and Python (boards/locks/ARCH-pyXY.txt)")
    lp.add_argument("--arch", required=True, choices=sorted(wheels.ARCHES))
    lp.add_argument("--python", required=True, help="the base OS's Python, e.g. 3.11")
    lp.add_argument("--glibc", required=True, help="the base OS's glibc, e.g. 2.36")
    lp.add_argument("--json", action="store_true")
    lp.set_defaults(func=_lock)

    ap = rs.add_parser("payload", help="lay out a Linux board's application slot (firmware and "
                       "locked wheels) as a release payload's app/")
    ap.add_argument("--board", required=True)
    ap.add_argument("--out", required=True, type=Path, metavar="DIR",
                    help="payload directory to create; app/ goes in it (add os/ and boot/)")
    ap.add_argument("--json", action="store_true")
    ap.set_defaults(func=_payload)

    sp = rs.add_parser("serve", help="serve metadata/ and targets/ over HTTP(S)")
    sp.add_argument("repo", type=Path, metavar="REPO")
    sp.add_argument("--port", type=int, default=8443)
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--tls-cert")
    sp.add_argument("--tls-key")
    sp.set_defaults(func=_serve)


def _init(args: argparse.Namespace) -> int:
    repo = ReleaseRepo.init(args.repo, args.root_keys, args.root_threshold)
    emit({"repo": str(args.repo), "trusted_root": str(repo.meta_dir / "1.root.json")}, args.json,
         "created %s\n  provision gateways with %s\n  keys in %s (0600). A real deployment "
         "keeps the root keys offline." % (args.repo, repo.meta_dir / "1.root.json",
                                            repo.keys.dir))
    return 0


def _publish(args: argparse.Namespace) -> int:
    repo = ReleaseRepo(args.repo)
    # Release gate (issue 10): refuse a failed/missing scan unless overridden with a reason.
    scan = check_scan(args.scan_report, args.override_scan)
    check_payload(args.path, load_board(args.board))  # before anything is built or signed
    rel = repo.publish(args.board, args.version, args.path, args.changelog, args.min_version,
                       args.scan_report, args.chunk_size, args.health_check)
    history.append(args.repo, {"action": "scan-gate", "board": args.board,
                               "version": args.version, **scan})
    rel = dict(rel, **scan)
    emit(rel, args.json, "published %s %s (%d chunks, min %s)" % (
        args.board, args.version, len(rel["chunks"]), rel["min_version"] or "-"))
    return 0


def _lock(args: argparse.Namespace) -> int:
    lock = wheels.generate_lock(args.arch, args.python, args.glibc)
    emit({"lock": str(lock.path), "arch": lock.arch, "python": lock.python,
          "glibc": lock.glibc, "dependencies": wheels.describe(lock)}, args.json,
         "pinned %d wheels for %s / Python %s in %s" % (len(lock.wheels), lock.arch, lock.python,
                                                       lock.path))
    return 0


def _payload(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    app = args.out / "app"
    if app.exists():
        raise ConfigError("already exists", str(app), hint="give a new --out directory")
    if board.runtime != "cpython" or board.base_os_requires is None:
        raise ConfigError("board %s has no application slot (not a Linux board image)"
                          % board.name, hint="MicroPython boards take `mamori flash deploy`")
    deps = appslot.lay_out(board, app)
    emit({"app": str(app), **deps}, args.json,
         "laid out %s with %d wheels (%s / Python %s); add os/ and boot/, then `mamori release "
         "publish`" % (app, len(deps["wheels"]), deps["arch"], deps["python"]))
    return 0


def _rotate(args: argparse.Namespace) -> int:
    entry = ReleaseRepo(args.repo).rotate_key(args.role)
    emit(entry, args.json, "rotated %s: %s -> %s" % (
        args.role, ",".join(k[:12] for k in entry["old_keyids"]), entry["new_keyid"][:12]))
    return 0


def _history(args: argparse.Namespace) -> int:
    ReleaseRepo(args.repo)
    rows = history.read(args.repo)
    lines = []
    for r in rows:
        what = {"publish": "%s %s" % (r.get("board"), r.get("version")),
                "rotate-key": "role %s" % r.get("role"),
                "init": "families %s" % ",".join(r.get("families", []))}.get(r["action"], "")
        lines.append("%s  %-10s %-22s %s" % (r["time"], r["action"], what, r["by"]))
    emit({"history": rows}, args.json, "\n".join(lines) or "no history")
    return 0


def _serve(args: argparse.Namespace) -> int:
    ReleaseRepo(args.repo)
    server = RepoServer(args.repo, args.port, args.host, args.tls_cert, args.tls_key)
    print("serving %s on %s (metadata/ and targets/ only)" % (args.repo, server.url), flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
