"""`mamori-gateway tuf-client`: the gateway's TUF layer behind the tuf-conformance client CLI."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from firmware.core import strictjson
from firmware.core.errors import MamoriError
from firmware.gateway.update.tufclient import TufClient


def register(sub: Any) -> None:
    """Add the `tuf-client` command (init / refresh / download)."""
    p = sub.add_parser("tuf-client")
    p.add_argument("--metadata-dir", required=True, type=Path)
    p.add_argument("--metadata-url")
    p.add_argument("--target-name", action="append", default=[],
                   help="target path to download (repeat for several)")
    p.add_argument("--target-base-url")
    p.add_argument("--target-dir", type=Path)
    p.add_argument("action", choices=("init", "refresh", "download"))
    p.add_argument("trusted_root", nargs="?", type=Path)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        if args.action == "init":
            if args.trusted_root is None:
                raise MamoriError("init needs TRUSTED_ROOT")
            root = strictjson.loads_object(args.trusted_root.read_bytes(), str(args.trusted_root))
            if not isinstance(root.get("signed"), dict) or root["signed"].get("_type") != "root":
                raise MamoriError("%s is not TUF root metadata" % args.trusted_root)
            args.metadata_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(args.trusted_root, args.metadata_dir / "root.json")
            return 0
        if not args.metadata_url:
            raise MamoriError("--metadata-url is required")
        if args.action == "refresh":
            TufClient(args.metadata_dir, args.metadata_url).refresh()
            return 0
        if not (args.target_name and args.target_base_url and args.target_dir):
            raise MamoriError("download needs --target-name, --target-base-url, --target-dir")
        args.target_dir.mkdir(parents=True, exist_ok=True)
        client = TufClient(args.metadata_dir, args.metadata_url,
                           target_base_url=args.target_base_url, target_dir=args.target_dir)
        client.refresh()
        failed = 0
        for name in args.target_name:
            try:
                info = client.target(name)
                if info is None:
                    raise MamoriError("target %r is not in the trusted metadata" % name)
                client.download(info)
            except (MamoriError, OSError) as exc:
                failed += 1
                print("error: %s: %s" % (name, exc), file=sys.stderr)
        return 1 if failed else 0
    except (MamoriError, OSError) as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1
