"""Run `nft` (optionally inside a network namespace): atomic load and JSON listing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

from firmware.core.errors import ConfigError, MamoriError, StateError

CAP_NET_ADMIN = 12
_NETNS_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class NftError(MamoriError):
    """nft refused a command or could not be run."""

    code = "nft"


def has_cap_net_admin() -> bool:
    """True when this process may change the kernel's ruleset (root or CAP_NET_ADMIN)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except OSError:
        pass
    return os.geteuid() == 0


def nft_path() -> str:
    """Path of the nft binary, or a StateError saying how to get it."""
    path = shutil.which("nft") or ("/usr/sbin/nft" if os.path.exists("/usr/sbin/nft") else None)
    if path is None:
        raise StateError("nft is not installed", "install the Debian package 'nftables'")
    return path


def netns_prefix(netns: str | None) -> list[str]:
    """Command prefix that runs the rest inside network namespace NETNS (none: this one)."""
    if not netns:
        return []
    if not _NETNS_RE.match(netns):
        raise ConfigError(f"invalid network namespace name {netns!r}")
    return ["ip", "netns", "exec", netns]


def run_nft(args: list[str], netns: str | None = None, stdin: str | None = None,
            timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Run nft with ARGS; raise NftError (with nft's message) when it fails."""
    cmd = netns_prefix(netns) + [nft_path()] + args
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NftError(f"cannot run nft: {exc}")
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        first = msg[0] if msg else f"exit code {proc.returncode}"
        hint = ""
        if "Operation not permitted" in proc.stderr or "Permission denied" in proc.stderr:
            hint = "needs root or CAP_NET_ADMIN"
        err = NftError("nft {} failed: {}".format(" ".join(args[:3]), first), hint)
        err.stderr = proc.stderr  # type: ignore[attr-defined]
        raise err
    return proc


def load(script: str, netns: str | None = None) -> None:
    """Load an nft script in one transaction (`nft -f -`): all of it applies or none does."""
    run_nft(["-f", "-"], netns, stdin=script)


def list_table(family: str, table: str, netns: str | None = None) -> dict | None:
    """`nft -j list table FAMILY TABLE` parsed, or None when the table does not exist."""
    try:
        proc = run_nft(["-j", "list", "table", family, table], netns)
    except NftError as exc:
        if "No such file or directory" in getattr(exc, "stderr", ""):
            return None
        raise
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        raise NftError(f"nft printed invalid JSON for table {family} {table}")
    if not isinstance(doc, dict):
        raise NftError(f"nft printed unexpected JSON for table {family} {table}")
    return doc


def list_tables(netns: str | None = None) -> list[tuple[str, str]]:
    """(family, name) of every nftables table present."""
    proc = run_nft(["-j", "list", "tables"], netns)
    try:
        items = json.loads(proc.stdout).get("nftables", [])
    except (ValueError, AttributeError):
        raise NftError("nft printed invalid JSON for 'list tables'")
    return [(i["table"]["family"], i["table"]["name"]) for i in items if "table" in i]


def delete_table(family: str, table: str, netns: str | None = None) -> None:
    """Remove a table (used by tests and by uninstall)."""
    run_nft(["delete", "table", family, table], netns)
