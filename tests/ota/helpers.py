"""Shared plumbing for OTA tests: a release repo served over loopback and a sim gateway."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuf.api.metadata import Metadata, Signed, Targets

from firmware.common.boards import load_board
from firmware.gateway.update.agent import UpdateAgent
from host_tools.release.repo import ReleaseRepo
from host_tools.release.serve import RepoServer
from tests.conftest import ROOT

CHUNK = 1024


def make_payload(base: Path, tag: str, size: int = 3000, health_rc: int | None = None) -> Path:
    """A small application payload whose bytes depend on `tag`."""
    p = base / ("payload-" + tag)
    (p / "app").mkdir(parents=True, exist_ok=True)
    (p / "app" / "main.py").write_text("VERSION = %r\n" % tag)
    blob = hashlib.sha256(tag.encode()).digest() * (size // 32 + 1)
    (p / "app" / "data.bin").write_bytes(blob[:size])
    if health_rc is not None:
        (p / "app" / "healthcheck.py").write_text(
            "import sys\nprint('health', file=sys.stderr)\nsys.exit(%d)\n" % health_rc)
    return p


def tree_digest(path: Path) -> str:
    """A digest of a directory tree (names and contents) to prove nothing was written."""
    h = hashlib.sha256()
    if not path.exists():
        return "absent"
    for f in sorted(path.rglob("*")):
        h.update(str(f.relative_to(path)).encode())
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()


class Env:
    """A release repository, its loopback server and one sim gateway state dir."""

    def __init__(self, tmp: Path, **repo_kwargs: Any) -> None:
        self.tmp = tmp
        self.repo = ReleaseRepo.init(tmp / "repo", **repo_kwargs)
        self.server = RepoServer(tmp / "repo")
        self.server.start()
        self.url = self.server.url
        self.state = tmp / "gw"
        self.board = load_board("sim")
        self.requests: list[str] = []

    def publish(self, version: str, tag: str | None = None, **kw: Any) -> dict[str, Any]:
        """Publish `version` for sim with a payload derived from tag (default: version)."""
        health = kw.pop("health_rc", None)
        payload = make_payload(self.tmp, tag or version, health_rc=health)
        return self.repo.publish("sim", version, payload, chunk_size=CHUNK, **kw)

    def agent(self, **kw: Any) -> UpdateAgent:
        """An in-process agent trusting the repository's first root."""
        a = UpdateAgent(self.state, self.board, kw.pop("source", self.url), **kw)
        a.trust_root(self.repo.trusted_root())
        return a

    def slot(self, name: str) -> Path:
        """A slot directory of the gateway."""
        return self.state / "slots" / name

    def bundle_url_path(self, version_info: dict[str, Any]) -> str:
        """URL path of the current sim bundle."""
        md = self.repo._load("sim", Targets)
        sha = md.signed.targets["sim/firmware.bundle"].hashes["sha256"]
        return "/targets/sim/%s.firmware.bundle" % sha

    def resign(self, role: str, mutate: Callable[[Signed], None],
               signers: list[Any] | None = None) -> int:
        """Change a delegated role's metadata and sign it (attacker keys if given)."""
        md: Metadata[Any] = self.repo._load(role, Targets)
        mutate(md.signed)
        self.repo._bump(md, "family")
        if signers is None:
            self.repo._write(md, role)
        else:
            md.signatures.clear()
            for s in signers:
                md.sign(s, append=True)
            (self.repo.meta_dir / ("%d.%s.json" % (md.signed.version, role))).write_bytes(
                md.to_bytes())
        self.repo._publish_snapshot({role: md.signed.version})
        return int(md.signed.version)

    def close(self) -> None:
        """Stop the server."""
        self.server.shutdown()
        self.server.server_close()


def gateway_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60,
                input: str | None = None) -> subprocess.CompletedProcess[str]:  # noqa: A002
    """Run `mamori-gateway ARGS` as a subprocess (stdin: `input`, else empty)."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "firmware.gateway.cli.main", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=e,
                          input=input or "")


ADMIN_SECRET = "ota-Operator-Secret-4821"


def admin_state(env: Env, tmp: Path, change: bool = True) -> str:
    """Give the gateway's state dir an installed identity; returns its admin credential
    (changed to ADMIN_SECRET, or the unchanged initial one when change is False)."""
    import shutil

    from firmware.gateway.identity.install import change_admin_credential
    from tests.provisioning.sitekit import Kit

    kit = Kit(tmp / "kit")
    initial = Path(str(kit.bundle) + ".admin-credential").read_text().strip().splitlines()[-1]
    for item in kit.state.iterdir():
        dest = env.state / item.name
        if not dest.exists():
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, dest)
    if not change:
        return initial
    change_admin_credential(env.state, initial, ADMIN_SECRET)
    return ADMIN_SECRET
