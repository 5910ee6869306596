"""Where the flashed firmware comes from: a signed release (TUF-verified) or, explicitly, the
local tree as an unsigned development build.

A release is checked with the gateway's own update verifier (``TufClient``: python-tuf ngclient
against the trusted root, with the gateway's floors) and unpacked with the gateway's slot writer
(every payload file against the signed bundle's manifest) into a temporary directory; nothing
reaches the board or the output before both checks passed.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.common.families import target_path
from firmware.common.version import software_version
from firmware.core.errors import IntegrityError, MamoriError, ProtocolError
from firmware.gateway.update.slots import write_slot
from firmware.gateway.update.tufclient import TufClient
from host_tools.flash.errors import TargetError, WrongBoardError
from host_tools.flash.payload import env_root

RELEASE = "release"
DEVELOPMENT = "development"


class UnsignedImageError(IntegrityError):
    """The firmware offered for flashing is not signed by the release key."""

    code = "unsigned"
    exit_code = 7


@dataclass
class FirmwareSource:
    """A verified firmware tree to flash, and how it was obtained."""

    build: str
    version: str
    tree: Path  # holds firmware/ (and boards/ when the release carries them)
    os_dir: Path | None = None
    boot_dir: Path | None = None
    bundle_sha256: str = ""
    repo: str = ""
    release: dict[str, Any] = field(default_factory=dict)
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    def stamp(self) -> dict[str, Any]:
        """What the image, the board manifest and the inventory record about the build."""
        out: dict[str, Any] = {"build": self.build, "signed": self.build == RELEASE}
        if self.build == RELEASE:
            out.update({"release_sha256": self.bundle_sha256, "release_repo": self.repo})
        return out

    def cleanup(self) -> None:
        """Remove the unpacked release."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def development() -> FirmwareSource:
    """The local source tree, stamped as an unsigned development build."""
    return FirmwareSource(DEVELOPMENT, software_version(), env_root())


def _unsigned(exc: MamoriError) -> UnsignedImageError:
    return UnsignedImageError("image not signed by the release key: " + exc.message,
                              "the bundle or its metadata is not genuine; fetch the release "
                              "again from the release repository, nothing was written")


def from_release(repo: Path, board: str, version: str | None = None,
                 trusted_root: Path | None = None) -> FirmwareSource:
    """Verify BOARD's current release in REPO (TUF) and unpack it; raise before any write."""
    meta = repo / "metadata"
    root = trusted_root or meta / "1.root.json"
    if not meta.is_dir() or not root.is_file():
        raise TargetError("%s is not a release repository (no %s)" % (repo, root),
                          "create releases with `mamori release init/publish`")
    tmp = tempfile.TemporaryDirectory(prefix="mamori-release-")
    try:
        src = _verify(repo, board, version, root, Path(tmp.name))
    except BaseException:
        tmp.cleanup()
        raise
    src._tmp = tmp
    return src


def _verify(repo: Path, board: str, version: str | None, root: Path,
            work: Path) -> FirmwareSource:
    tuf_dir = work / "tuf"
    tuf_dir.mkdir()
    shutil.copyfile(root, tuf_dir / "root.json")
    try:
        client = TufClient(tuf_dir, (repo / "metadata").resolve().as_uri(),
                           target_base_url=(repo / "targets").resolve().as_uri(),
                           target_dir=work / "download")
        (work / "download").mkdir()
        client.refresh()
        info = client.target(target_path(board))
        if info is None:
            raise TargetError("the release repository has no signed release for board %s"
                              % board, "publish one with `mamori release publish --board %s`"
                              % board)
        custom = info.unrecognized_fields.get("custom", {})
        rel = custom.get("mamori") if isinstance(custom, dict) else None
        if not isinstance(rel, dict) or rel.get("board") != board:
            raise WrongBoardError("the signed release at %s is not for board %s"
                                  % (target_path(board), board))
        if version is not None and rel.get("version") != version:
            raise TargetError("the signed release of %s is version %s, not %s"
                              % (board, rel.get("version"), version),
                              "only the current release can be verified; omit --version or "
                              "publish %s" % version)
        path = Path(client.download(info))
    except IntegrityError as exc:
        raise _unsigned(exc)
    except ProtocolError as exc:
        raise TargetError("cannot read the release from %s: %s" % (repo, exc.message),
                          "check the repository path; a published release has metadata/ and "
                          "targets/")
    try:
        write_slot(path, work / "slot", {"version": rel["version"]}, board)
    except IntegrityError as exc:
        raise _unsigned(exc)
    payload = work / "slot" / "payload"
    return FirmwareSource(RELEASE, str(rel["version"]), payload / "app",
                          os_dir=payload / "os" if (payload / "os").is_dir() else None,
                          boot_dir=payload / "boot" if (payload / "boot").is_dir() else None,
                          bundle_sha256=info.hashes.get("sha256", ""),
                          repo=str(repo), release=rel)


def resolve(args: Any, board: str) -> FirmwareSource:
    """The source the command line asks for: --release REPO or --unsigned-dev-build."""
    if getattr(args, "unsigned_dev_build", False):  # explicit, so it beats the env default
        return development()
    if getattr(args, "release", None) is not None:
        return from_release(args.release, board, args.version, args.trusted_root)
    raise TargetError("refusing to flash firmware that is not from a signed release",
                      "give --release REPO (a `mamori release` repository; or set "
                      "MAMORI_RELEASE_REPO), or "
                      "--unsigned-dev-build to flash the local tree as a development build")
