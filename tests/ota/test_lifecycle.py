"""Good updates commit and show in history; failing ones roll back and are reported; resume,
offline and HTTPS paths go through the same verifier; the CLIs work end to end."""

from __future__ import annotations

import datetime
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from firmware.core.errors import IntegrityError, ProtocolError
from firmware.core.events import Event
from firmware.gateway.update import status
from firmware.gateway.update.agent import UpdateAgent
from host_tools.release.repo import copy_public
from host_tools.release.serve import RepoServer
from tests.conftest import require
from tests.ota.helpers import Env, admin_state, gateway_cli, tree_digest


def test_good_update_commits_and_appears_in_history(env: Env) -> None:
    env.publish("1.0", changelog="first")
    r = gateway_cli("update", "--state-dir", str(env.state), "--from", env.url,
                    "--trust-root", str(env.repo.meta_dir / "1.root.json"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["result"] == "installed"
    r = gateway_cli("update", "--state-dir", str(env.state), "--from", env.url)
    assert r.returncode == 0 and "already current" in r.stdout
    st = status(env.state)
    assert st["version"] == "1.0" and st["slot"] == "b"
    assert [h["action"] for h in st["history"]] == ["installed"]
    assert st["history"][0]["changelog"] == "first"


def test_failing_health_check_rolls_back_and_reports(env: Env) -> None:
    env.publish("1.0")
    env.agent().run()
    env.publish("1.1", health_rc=1)
    events: list[Event] = []
    res = env.agent(emit=events.append).run()
    assert res["result"] == "rolled_back" and res["version"] == "1.0"
    assert "health check" in res["reason"]
    assert [(e.kind, e.severity, e.target) for e in events] == [("ota.rollback", "alert", "1.1")]
    st = status(env.state)
    assert st["version"] == "1.0" and st["slot"] == "b"
    assert st["history"][-1]["action"] == "rolled_back"
    report = json.loads((env.state / "update" / "reports.jsonl").read_text().splitlines()[-1])
    assert report["kind"] == "ota.rollback"
    # The failed release is not retried; the CLI says why and exits non-zero.
    r = gateway_cli("update", "--state-dir", str(env.state), "--from", env.url)
    assert r.returncode == 1 and "already failed its trial boot" in r.stderr
    env.publish("1.2")
    assert env.agent().run()["version"] == "1.2"


def test_cli_reports_rollback_with_exit_code(env: Env) -> None:
    env.publish("1.0")
    env.agent().run()
    env.publish("1.1", health_rc=2)
    r = gateway_cli("update", "--state-dir", str(env.state), "--from", env.url)
    assert r.returncode == 3 and "rolled back" in r.stderr


def test_offline_update_from_directory_and_tar(env: Env, tmp_path: Path) -> None:
    env.publish("1.0")
    stick = tmp_path / "stick"
    copy_public(env.repo.path, stick)
    agent = env.agent(source=str(stick))
    assert agent.run()["version"] == "1.0"
    env.publish("1.1")
    tar_path = tmp_path / "update.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(env.repo.path / "metadata", "metadata")
        tar.add(env.repo.path / "targets", "targets")
    r = gateway_cli("update", "--state-dir", str(env.state), "--from", str(tar_path),
                    input=admin_state(env, tmp_path) + "\n")
    assert r.returncode == 0, r.stderr
    assert status(env.state)["version"] == "1.1"
    # A tampered stick is refused by the same verifier.
    env.publish("1.2")
    copy_public(env.repo.path, stick)
    for f in (stick / "targets" / "sim").glob("*.firmware.bundle"):
        data = bytearray(f.read_bytes())
        data[-600] ^= 1
        f.write_bytes(bytes(data))
    inactive = env.slot("b" if status(env.state)["slot"] == "a" else "a")
    before = tree_digest(inactive)
    with pytest.raises(IntegrityError, match="signed hash"):
        env.agent(source=str(stick)).run()
    assert tree_digest(inactive) == before


def _tls_cert(tmp: Path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    c, k = tmp / "tls.pem", tmp / "tls.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    os.chmod(k, 0o600)
    return str(c), str(k)


def test_https_server_with_pinned_ca(env: Env, tmp_path: Path) -> None:
    cert, key = _tls_cert(tmp_path)
    server = RepoServer(env.repo.path, tls_cert=cert, tls_key=key)
    server.start()
    try:
        env.publish("1.0")
        with pytest.raises(ProtocolError):  # unknown CA: refused
            env.agent(source=server.url).run()
        agent: UpdateAgent = env.agent(source=server.url, ca_file=cert)
        assert agent.run()["result"] == "installed"
    finally:
        server.shutdown()
        server.server_close()


def test_tuf_client_conformance_cli(env: Env, tmp_path: Path) -> None:
    env.publish("1.0")
    md, tg = tmp_path / "md", tmp_path / "tg"
    base = ["tuf-client", "--metadata-dir", str(md)]
    assert gateway_cli(*base, "init", str(env.repo.meta_dir / "1.root.json")).returncode == 0
    url = ["--metadata-url", env.url + "/metadata"]
    assert gateway_cli(*base, *url, "refresh").returncode == 0
    for role in ("root", "timestamp", "snapshot", "targets"):
        assert (md / (role + ".json")).is_file()
    assert not any(p.name[0].isdigit() for p in md.iterdir())
    dl = [*base, *url, "--target-name", "sim/sbom-1.0.cdx.json", "--target-base-url",
          env.url + "/targets", "--target-dir", str(tg), "download"]
    r = gateway_cli(*dl)
    assert r.returncode == 0, r.stderr
    files = [p for p in tg.rglob("*") if p.is_file()]
    assert len(files) == 1 and json.loads(files[0].read_bytes())["bomFormat"] == "CycloneDX"
    # Forged metadata: exit 1.
    env.server.overrides["/metadata/timestamp.json"] = b'{"signed": {}, "signatures": []}'
    assert gateway_cli(*base, *url, "refresh").returncode == 1
    assert gateway_cli(*base, *url, "--target-name", "sim/nope", "--target-base-url",
                       env.url + "/targets", "--target-dir", str(tg), "download"
                       ).returncode == 1


def test_release_cli_end_to_end(tmp_path: Path) -> None:
    require("openssl")  # the scan report hash is checked against openssl's digest
    import subprocess
    import sys

    from tests.conftest import ROOT

    def mamori(*a: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "host_tools.cli.main", *a], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    repo = tmp_path / "repo"
    assert mamori("release", "init", str(repo)).returncode == 0
    keys = list((repo / "keys").glob("*.pem"))
    assert keys and all(oct(k.stat().st_mode & 0o777) == "0o600" for k in keys)
    pay = tmp_path / "p" / "app"
    pay.mkdir(parents=True)
    (pay / "main.py").write_text("x = 1\n")
    scan = tmp_path / "scan.json"
    # a passing `mamori scan` report, written canonically so openssl hashes what the gate hashes
    scan.write_text('{"findings":[{"id":"ports.wan","verdict":"pass"}],"schema":"mamori-scan/1"}')
    r = mamori("release", "publish", str(repo), "--board", "sim", "--version", "1.0",
               str(tmp_path / "p"), "--changelog", "fix", "--scan-report", str(scan), "--json")
    assert r.returncode == 0, r.stderr
    rel = json.loads(r.stdout)
    digest = subprocess.run(["openssl", "dgst", "-sha256", "-r", str(scan)],
                            capture_output=True, text=True).stdout.split()[0]
    assert rel["scan_report_sha256"] == digest and rel["changelog"] == "fix"
    r = mamori("release", "publish", str(repo), "--board", "rpi4", "--version", "1.0",
               str(tmp_path / "p"))
    assert r.returncode == 1 and "no scan report" in r.stderr  # the release gate
    r = mamori("release", "publish", str(repo), "--board", "rpi4", "--version", "1.0",
               str(tmp_path / "p"), "--scan-report", str(scan))
    assert r.returncode == 1 and "os/, boot/" in r.stderr
    assert mamori("release", "rotate-key", str(repo), "--role", "snapshot").returncode == 0
    assert mamori("release", "rotate-key", str(repo), "--role", "nope").returncode == 1
    h = json.loads(mamori("release", "history", str(repo), "--json").stdout)["history"]
    actions = [x["action"] for x in h]
    assert actions[0] == "init" and actions[-1] == "rotate-key"
    published = [x for x in h if x["action"] == "publish"]
    assert len(published) == 1 and published[0]["boards"] == ["sim"] and published[0]["by"]
    text = mamori("release", "history", str(repo)).stdout
    assert "sim 1.0" in text


def _unused(x: Any) -> None:
    return None


def test_ota_service_status_and_forwards_reports(env: Env) -> None:
    import asyncio
    from types import SimpleNamespace

    from firmware.gateway.update.service import OtaService

    env.publish("1.0")
    env.agent().run()
    env.publish("1.1", health_rc=1)
    env.agent().run()
    got: list[Event] = []
    gw: Any = SimpleNamespace(board=env.board, state_dir=env.state, emit=got.append)
    svc = OtaService(gw)
    asyncio.run(svc.start())
    assert [(e.kind, e.severity) for e in got] == [("ota.rollback", "alert")]
    asyncio.run(svc.start())
    assert len(got) == 1  # forwarded once
    st = svc.status()
    assert st["version"] == "1.0" and st["slot"] == "b" and len(st["history"]) == 2
