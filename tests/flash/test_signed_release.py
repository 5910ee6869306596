"""Images and deploys only from signed releases: TUF-verified with the gateway's verifier before
anything is written; a tampered bundle or forged metadata is refused and nothing is written."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, TargetFile, Targets

from host_tools.release.repo import ReleaseRepo
from tests.conftest import ROOT, require_image_tools
from tests.flash.conftest import deploy_json, mamori
from tests.flash.target import WasmTarget

IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def linux_payload(base: Path) -> Path:
    """A release payload for a tryboot board: app/ (the firmware), os/, boot/."""
    p = base / "payload-rpi4"
    shutil.copytree(ROOT / "firmware", p / "app/firmware", ignore=IGNORE)
    (p / "os/etc").mkdir(parents=True)
    (p / "os/etc/mamori-os.txt").write_text("base os layer 1\n")
    (p / "boot/overlays").mkdir(parents=True)
    (p / "boot/overlays/mamori.txt").write_text("overlay\n")
    return p


def publish(tmp: Path, board: str, version: str, payload: Path) -> ReleaseRepo:
    """A release repository with one published release of BOARD."""
    repo_dir = tmp / "repo"
    repo = ReleaseRepo(repo_dir) if (repo_dir / "repo.json").exists() else \
        ReleaseRepo.init(repo_dir, root_keys=1, root_threshold=1)
    repo.publish(board, version, payload, chunk_size=64 * 1024)
    return repo


def bundle_file(repo: ReleaseRepo, board: str) -> Path:
    """The published bundle of BOARD in the repository."""
    return next((repo.targets_dir / board).glob("*.firmware.bundle"))


def forge(repo: ReleaseRepo, board: str, fam: str, evil: bytes) -> None:
    """Point BOARD's release at EVIL bytes in metadata signed by an attacker's key (the
    snapshot/timestamp keys are the repository's, as if its host were compromised)."""
    sha = hashlib.sha256(evil).hexdigest()
    (repo.targets_dir / board / (sha + ".firmware.bundle")).write_bytes(evil)
    md: Metadata[Any] = repo._load(fam, Targets)
    old = md.signed.targets[board + "/firmware.bundle"]
    md.signed.targets[board + "/firmware.bundle"] = TargetFile(
        len(evil), {"sha256": sha}, old.path, unrecognized_fields=old.unrecognized_fields)
    repo._bump(md, "family")
    md.signatures.clear()
    md.sign(CryptoSigner.generate_ed25519(), append=True)
    (repo.meta_dir / ("%d.%s.json" % (md.signed.version, fam))).write_bytes(md.to_bytes())
    repo._publish_snapshot({fam: md.signed.version})


def debugfs_cat(img: Path, desc: dict, part: int, path: str, tmp: Path) -> str:
    """A file from an ext4 partition of the image."""
    p = desc["partitions"][part - 1]
    dest = tmp / ("p%d.img" % part)
    with open(img, "rb") as f:
        f.seek(p["start"])
        dest.write_bytes(f.read(p["bytes"]))
    return subprocess.run(["debugfs", "-R", "cat " + path, str(dest)], capture_output=True,
                          text=True).stdout


def test_image_from_signed_release_then_tampered_and_forged_are_refused(
        env: dict[str, str], tmp_path: Path) -> None:
    require_image_tools()
    repo = publish(tmp_path, "rpi4", "1.4.0", linux_payload(tmp_path))
    site = tmp_path / "site"
    site.mkdir()
    out = tmp_path / "rpi4.img"
    p = mamori(env, "flash", "image", "--board", "rpi4", "--out", str(out), "--release",
               str(repo.path), "--version", "1.4.0", "--site", str(site), "--json", "--quiet")
    assert p.returncode == 0, p.stderr
    desc = json.loads(p.stdout)
    sha = bundle_file(repo, "rpi4").name.split(".")[0]
    assert desc["build"] == "release" and desc["signed"] and desc["version"] == "1.4.0"
    assert desc["release_sha256"] == sha and desc["verified"]
    rel = json.loads(debugfs_cat(out, desc, 2, "/etc/mamori/release.json", tmp_path))
    assert rel["build"] == "release" and rel["version"] == "1.4.0" and rel["release_sha256"] == sha
    assert "base os layer 1" in debugfs_cat(out, desc, 2, "/etc/mamori-os.txt", tmp_path)
    assert "def main" in debugfs_cat(out, desc, 2, "/opt/mamori/firmware/gateway/cli/main.py",
                                     tmp_path)
    row = json.loads((site / "flash-inventory.jsonl").read_text())
    assert row["build"] == "release" and row["release_sha256"] == sha and row["signed"]
    # Asking for another version than the signed one: refused, nothing written.
    out2 = tmp_path / "other.img"
    p = mamori(env, "flash", "image", "--board", "rpi4", "--out", str(out2), "--release",
               str(repo.path), "--version", "9.9.9")
    assert p.returncode != 0 and "version 1.4.0, not 9.9.9" in p.stderr and not out2.exists()
    # A tampered bundle (one flipped byte) is refused; the output is not even created.
    bundle = bundle_file(repo, "rpi4")
    good = bundle.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01
    bundle.write_bytes(bytes(bad))
    out3 = tmp_path / "tampered.img"
    p = mamori(env, "flash", "image", "--board", "rpi4", "--out", str(out3), "--release",
               str(repo.path), "--json")
    assert p.returncode == 7, p.stderr
    assert "image not signed by the release key" in p.stderr and not out3.exists()
    assert json.loads(p.stdout)["error"] == "unsigned"
    bundle.write_bytes(good)
    # Forged targets metadata (attacker's key) naming the attacker's bundle: refused.
    forge(repo, "rpi4", "rpi", b"evil firmware" * 100)
    out4 = tmp_path / "forged.img"
    p = mamori(env, "flash", "image", "--board", "rpi4", "--out", str(out4), "--release",
               str(repo.path))
    assert p.returncode == 7 and "image not signed by the release key" in p.stderr, p.stderr
    assert "not signed by enough trusted keys" in p.stderr and not out4.exists()
    # An existing output is left untouched by a refused flash.
    out.write_bytes(b"previous image")
    p = mamori(env, "flash", "image", "--board", "rpi4", "--out", str(out), "--release",
               str(repo.path))
    assert p.returncode == 7 and out.read_bytes() == b"previous image"


def test_local_tree_needs_the_explicit_dev_flag_and_is_stamped(
        env: dict[str, str], tmp_path: Path) -> None:
    require_image_tools()
    out = tmp_path / "dev.img"
    p = mamori(env, "flash", "image", "--board", "rpi4", "--out", str(out))
    assert p.returncode != 0 and "not from a signed release" in p.stderr and not out.exists()
    assert "--unsigned-dev-build" in p.stderr
    p = mamori(env, "flash", "image", "--board", "rpi4", "--out", str(out), "--version", "1.0.0")
    assert p.returncode != 0 and "go with --release" in p.stderr and not out.exists()
    site = tmp_path / "site"
    site.mkdir()
    p = mamori(env, "flash", "image", "--unsigned-dev-build", "--board", "rpi4", "--out",
               str(out), "--json", "--quiet", "--site", str(site))
    assert p.returncode == 0, p.stderr
    desc = json.loads(p.stdout)
    assert desc["build"] == "development" and desc["signed"] is False
    rel = json.loads(debugfs_cat(out, desc, 2, "/etc/mamori/release.json", tmp_path))
    assert rel["build"] == "development" and rel["signed"] is False
    row = json.loads((site / "flash-inventory.jsonl").read_text())
    assert row["build"] == "development" and row["signed"] is False


@pytest.fixture
def mp_release(env: dict[str, str], tmp_path: Path) -> ReleaseRepo:
    """A signed release of the MicroPython test board (the portable sources)."""
    p = tmp_path / "payload-mp"
    for d in ("firmware/core", "firmware/device/portable", "firmware/micropython"):
        shutil.copytree(ROOT / d, p / "app" / d, ignore=IGNORE)
    for f in ("firmware/__init__.py", "firmware/device/__init__.py"):
        shutil.copy(ROOT / f, p / "app" / f)
    return publish(tmp_path, "mp-sim", "2.0.1", p)


def test_deploy_from_signed_release_and_refusals(env: dict[str, str], target: WasmTarget,
                                                 mp_release: ReleaseRepo,
                                                 tmp_path: Path) -> None:
    repo = str(mp_release.path)
    out = deploy_json(env, target.port, "--release", repo)
    assert out["build"] == "release" and out["version"] == "2.0.1" and out["signed"]
    assert out["selfcheck"]["ok"]
    manifest = json.loads(target.exec_direct("print(open('/slot_a/manifest.json').read())"))
    assert manifest["version"] == "2.0.1" and manifest["build"] == "release"
    assert manifest["release_sha256"] == out["release_sha256"]
    boot = target.exec_direct("import sys\nif '' not in sys.path:sys.path.insert(0,'')\n"
                              "import main\nmain.boot(ticks=1)")
    assert "verified" in boot and "version 2.0.1, release build" in boot
    # A tampered bundle: refused before the port is touched.
    bundle = bundle_file(mp_release, "mp-sim")
    data = bytearray(bundle.read_bytes())
    data[700] ^= 0x40
    bundle.write_bytes(bytes(data))
    sent = target.to_target
    p = mamori(env, "flash", "deploy", "--board", "mp-sim", "--port", target.port, "--release",
               repo, "--no-reset", "--quiet")
    assert p.returncode == 7 and "image not signed by the release key" in p.stderr, p.stderr
    assert target.to_target == sent  # not one byte went to the board
