"""`mamori flash deploy|image|verify`: turn a blank board into a Mamori gateway, verified."""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board
from firmware.common.boards import load_board
from firmware.common.cli import emit
from host_tools.flash import deploy as deploy_mod
from host_tools.flash import image as image_mod
from host_tools.flash import inventory, payload
from host_tools.flash import source as source_mod
from host_tools.flash.errors import TargetError, VerifyError
from host_tools.flash.progress import Progress
from host_tools.flash.rawrepl import RawRepl
from host_tools.flash.transport import SerialTransport


def register(sub: Any) -> None:
    """Add the `flash` command group."""
    p = sub.add_parser("flash")
    fsub = p.add_subparsers(dest="flash_cmd", metavar="ACTION")
    fsub.required = True

    d = fsub.add_parser("deploy", help="deploy the firmware to a MicroPython board over serial")
    _board_args(d)
    d.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyACM0")
    d.add_argument("--device-list", type=Path, metavar="FILE",
                   help="the gateway's device list from `mamori provision device-list` (who may "
                        "connect: certificate hashes, revocations, allowlist)")
    d.add_argument("--no-reset", action="store_true",
                   help="never soft-reset the board (on entry or at the end); leave it at its REPL")
    d.add_argument("--encoding", choices=("auto", "base64", "literal"), default="auto",
                   help="chunk encoding: base64, or bytes literals for boards whose base64 "
                   "decoder is slow Python code (auto picks)")
    _serial_args(d)
    d.set_defaults(func=_deploy)

    i = fsub.add_parser("image", help="build a Linux board image and write it to a file or device")
    _board_args(i)
    i.add_argument("--out", required=True, metavar="FILE_OR_DEVICE",
                   help="image file to create or block device to overwrite")
    i.add_argument("--size-mib", type=int, default=image_mod.DEFAULT_SIZE_MIB,
                   help="image size in MiB (default: as small as the application slots "
                   "allow, rounded up to 16 MiB)")
    i.add_argument("--yes", action="store_true", help="do not ask before overwriting a device")
    i.set_defaults(func=_image)

    v = fsub.add_parser("verify", help="verify a flashed board or image against what was built")
    v.add_argument("--board", required=True, help="board profile name (see `mamori boards list`)")
    v.add_argument("--port", help="serial port of a MicroPython board")
    v.add_argument("--image", metavar="FILE_OR_DEVICE", help="image file or device to re-read")
    v.add_argument("--sha256", help="expected SHA-256 of the image (from `flash image --json`)")
    v.add_argument("--bytes", type=int, help="image length in bytes (default: the whole file)")
    v.add_argument("--bundle", type=Path, help="the installation bundle that was injected")
    _serial_args(v, reset=False)
    v.set_defaults(func=_verify)


def _board_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board", required=True, help="board profile name (see `mamori boards list`)")
    p.add_argument("--bundle", type=Path, metavar="FILE",
                   help="installation bundle from `mamori provision gateway` to inject")
    p.add_argument("--site", type=Path, metavar="DIR",
                   help="site directory: record what was flashed in its inventory")
    p.add_argument("--operator", help="who flashes (default: $MAMORI_OPERATOR or login name)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _source_args(p)


def _source_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--release", type=Path, metavar="REPO",
                     default=Path(os.environ["MAMORI_RELEASE_REPO"])
                     if os.environ.get("MAMORI_RELEASE_REPO") else None,
                     help="flash the board's current signed release from this `mamori release` "
                     "repository (verified with TUF before anything is written; default "
                     "$MAMORI_RELEASE_REPO, so the short command form keeps working on a bench)")
    src.add_argument("--unsigned-dev-build", action="store_true",
                     help="flash the local source tree instead, stamped as a development build")
    p.add_argument("--version", help="with --release: the release version expected")
    p.add_argument("--trusted-root", type=Path, metavar="FILE",
                   help="with --release: the trusted TUF root (default: REPO/metadata/1.root.json"
                   "; give the root your gateways are provisioned with)")


def _serial_args(p: argparse.ArgumentParser, reset: bool = True) -> None:
    p.add_argument("--baud", type=int, default=115200, help="baud rate (default %(default)s)")
    p.add_argument("--raw-paste", choices=("auto", "on", "off"), default="auto",
                   help="raw-paste mode: auto (use it, fall back when the board misbehaves), "
                   "on (always try it), off (plain raw REPL)")
    p.add_argument("--attempts", type=int, default=5,
                   help="raw REPL entry attempts, with back-off (default %(default)s)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds of silence before the board counts as not answering")
    if not reset:
        p.add_argument("--json", action="store_true", help="machine-readable output")


def _read_bundle(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TargetError("cannot read bundle %s: %s" % (path, exc.strerror),
                          "make it with `mamori provision gateway DIR --board BOARD --id ID "
                          "--out BUNDLE`")


def _read_device_list(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TargetError("cannot read device list %s: %s" % (path, exc.strerror),
                          "make it with `mamori provision device-list DIR --gateway GW --out "
                          "FILE`")


def _open(args: argparse.Namespace) -> tuple[SerialTransport, RawRepl]:
    t = SerialTransport(args.port, args.baud)
    return t, RawRepl(t, raw_paste=args.raw_paste, attempts=args.attempts, timeout=args.timeout)


def _source(args: argparse.Namespace, board: Board) -> source_mod.FirmwareSource:
    if args.release is None and (args.version or args.trusted_root):
        raise TargetError("--version and --trusted-root go with --release REPO")
    return source_mod.resolve(args, board.name)


def _deploy(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    payload.micropython_board(board)
    bundle = _read_bundle(args.bundle)
    device_list = _read_device_list(args.device_list)
    src = _source(args, board)  # verified before the port is even opened
    try:
        files = payload.build(board, bundle, src.tree, src.version, src.stamp(),
                              device_list=device_list)
    finally:
        src.cleanup()
    t, repl = _open(args)
    bar = Progress("deploy", enabled=not args.quiet)
    try:
        repl.enter(soft_reset=not args.no_reset)
        result = deploy_mod.deploy(repl, board, files, progress=bar, encoding=args.encoding)
        bar.finish()
        result.selfcheck = deploy_mod.selfcheck(repl, payload.slot_dir(board))
        repl.leave(soft_reset=not args.no_reset)
    finally:
        t.close()
    if not result.selfcheck.get("ok"):
        raise VerifyError("the deployed core failed its self-check on the board: "
                          + str(result.selfcheck.get("line")),
                          "the files were verified; the board's MicroPython may be incompatible")
    manifest = files[-1]
    data = result.to_dict()
    data.update({"board": board.name, "port": args.port, "manifest_sha256": manifest.sha256,
                 "version": src.version, **src.stamp()})
    if bundle is not None:
        data["bundle_sha256"] = hashlib.sha256(bundle).hexdigest()
    if args.site is not None:
        entry = {"kind": "deploy", "board": board.name,
                 "serial": result.identity.get("unique_id") or "unknown",
                 "port": args.port, "image_sha256": manifest.sha256,
                 "version": data["version"], "operator": inventory.operator_name(args.operator),
                 "bundle_sha256": data.get("bundle_sha256"), **src.stamp()}
        data["inventory"] = str(inventory.record(args.site, entry))
    text = "deployed %d of %d files (%d bytes) to %s on %s; %s build %s; %s" % (
        sum(1 for f in result.files if f["transferred"]), len(result.files),
        result.transferred_bytes, board.name, args.port, src.build, src.version,
        result.selfcheck.get("line"))
    emit(data, args.json, text)
    return 0


def _image(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    bundle = _read_bundle(args.bundle)
    image_mod.linux_board(board)
    src = _source(args, board)  # verified before the output is even opened
    bar = Progress("image", enabled=not args.quiet)
    try:
        result = image_mod.flash_image(board, args.out, bundle=bundle, size_mib=args.size_mib,
                                       progress=bar, assume_yes=args.yes, source=src)
    finally:
        src.cleanup()
    bar.finish()
    data = dict(result)
    if args.site is not None:
        entry = {"kind": "image", "board": board.name, "serial": "unknown",
                 "target": str(args.out), "image_sha256": result["sha256"],
                 "version": result["version"], "operator": inventory.operator_name(args.operator),
                 "bundle_sha256": result.get("bundle_sha256"), **src.stamp()}
        data["inventory"] = str(inventory.record(args.site, entry))
    text = "wrote and verified %s image (%s build %s, %d bytes, sha256 %s) to %s" % (
        board.name, src.build, src.version, result["bytes"], result["sha256"], args.out)
    emit(data, args.json, text)
    return 0


def _verify(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    if (args.port is None) == (args.image is None):
        raise TargetError("give exactly one of --port (MicroPython board) or --image "
                          "(Linux image file or device)")
    if args.image is not None:
        if not args.sha256:
            raise TargetError("--image needs --sha256 (printed by `mamori flash image --json`)")
        got = image_mod.verify_target(args.image, args.sha256, args.bytes, None)
        emit(got, args.json, "image on %s matches sha256 %s" % (args.image, args.sha256))
        return 0
    payload.micropython_board(board)
    files = payload.build(board, _read_bundle(args.bundle), payload.env_root())
    if args.bundle is None:
        files = [f for f in files if not f.path.endswith("/" + payload.BUNDLE_NAME)]
        files = [f for f in files if not f.path.endswith("/manifest.json")]
    t, repl = _open(args)
    try:
        repl.enter(soft_reset=False)
        deploy_mod.start(repl, board, files)
        hashes = deploy_mod.remote_hashes(repl, [f.path for f in files])
        repl.leave(soft_reset=False)
    finally:
        t.close()
    rows = [{"path": f.path, "sha256": f.sha256, "on_board": h, "ok": h == f.sha256}
            for f, h in zip(files, hashes, strict=True)]
    bad = [r for r in rows if not r["ok"]]
    if bad:
        if args.json:
            emit({"files": rows, "ok": False}, True)
        raise VerifyError("%d of %d files on the board differ from this build: %s"
                          % (len(bad), len(rows), ", ".join(str(r["path"]) for r in bad[:5])),
                          "run `mamori flash deploy` again")
    emit({"files": rows, "ok": True}, args.json,
         "all %d files on the board match this build" % len(rows))
    return 0
