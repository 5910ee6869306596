"""Deploy files to a MicroPython board: skip what matches, write to a temporary name, verify the
SHA-256 on the board, then rename. A final name never holds a partly written file."""

from __future__ import annotations

import binascii
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from firmware.common.boardprofile import Board
from host_tools.flash.errors import TargetError, VerifyError, WrongBoardError
from host_tools.flash.payload import BoardFile, expected_platforms, mpy_version
from host_tools.flash.rawrepl import RawRepl

TMP_SUFFIX = ".mamori-tmp"
CHUNK = 2048  # payload bytes per raw REPL command (base64 on the wire)

# Helper functions installed in the raw REPL's globals once per session (plain MicroPython).
HELPER = """\
import os,binascii,hashlib,json
def _mh(p):
 try:f=open(p,'rb')
 except OSError:return None
 h=hashlib.sha256();b=bytearray(512);m=memoryview(b)
 while 1:
  n=f.readinto(b)
  if not n:break
  h.update(m[:n])
 f.close();return binascii.hexlify(h.digest()).decode()
def _mr(p):
 try:os.remove(p)
 except OSError:pass
def _mq(ps):
 for p in ps:_mr(p+'%(tmp)s')
 print(json.dumps([_mh(p) for p in ps]))
def _md(d):
 c=''
 for x in d.split('/'):
  if x:
   c+='/'+x
   try:os.mkdir(c)
   except OSError:pass
def _mo(p):
 global _mf;_mr(p);_mf=open(p,'wb')
def _mw(s):_mf.write(binascii.a2b_base64(s))
def _mx(b):_mf.write(b)
def _mc(t,p,h):
 global _mf;_mf.close();_mf=None;g=_mh(t)
 if g!=h:
  _mr(t);print(json.dumps({'ok':0,'got':g}));return
 try:os.rename(t,p)
 except OSError:
  _mr(p);os.rename(t,p)
 print(json.dumps({'ok':1,'got':g}))
try:import sys;_v=sys.implementation._mpy
except Exception:_v=None
print(json.dumps({'mpy':_v,'b64':type(binascii.a2b_base64).__name__!='function'}))
""" % {"tmp": TMP_SUFFIX}


@dataclass
class DeployResult:
    """What a deploy did."""

    files: list[dict] = field(default_factory=list)
    transferred_bytes: int = 0
    identity: dict = field(default_factory=dict)
    raw_paste: str = ""
    encoding: str = ""
    selfcheck: dict | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """The --json form."""
        return {"files": self.files, "transferred_bytes": self.transferred_bytes,
                "device": self.identity, "raw_paste": self.raw_paste,
                "encoding": self.encoding,
                "selfcheck": self.selfcheck, "seconds": round(self.seconds, 3)}


def _last_json(out: str) -> object:
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    if not lines:
        raise TargetError("the board printed nothing where an answer was expected")
    try:
        return json.loads(lines[-1])
    except ValueError:
        raise TargetError("unexpected answer from the board: %r" % lines[-1][:80])


def start(repl: RawRepl, board: Board, files: list[BoardFile]) -> dict:
    """Identify the board, check it fits the profile, install the helper functions."""
    ident = repl.probe()
    fits = expected_platforms(board)
    if fits and ident["platform"] not in fits:
        raise WrongBoardError(
            "the board on the port reports platform %r, but board %s expects %s"
            % (ident["platform"], board.name, " or ".join(repr(p) for p in fits)),
            hint="pass the --board that matches the connected board")
    answer = _last_json(repl.exec(HELPER))
    if not isinstance(answer, dict):
        raise TargetError("unexpected answer from the board's helper setup")
    device_mpy = answer.get("mpy")
    ident["native_base64"] = bool(answer.get("b64"))
    ours = mpy_version(files)
    if isinstance(device_mpy, int) and ours is not None and (device_mpy & 0xFF) != ours:
        raise WrongBoardError(
            "the board's MicroPython loads .mpy v%d, mpy-cross emits v%d"
            % (device_mpy & 0xFF, ours),
            hint="install an mpy-cross matching the board's MicroPython version")
    return ident


def remote_hashes(repl: RawRepl, paths: list[str]) -> list[str | None]:
    """SHA-256 of each path on the board (None when absent); stale temp files are removed."""
    got = _last_json(repl.exec("_mq(%s)" % json.dumps(paths), timeout=60))
    if not isinstance(got, list) or len(got) != len(paths):
        raise TargetError("the board answered a hash query with the wrong shape")
    return [g if isinstance(g, str) else None for g in got]


def choose_encoding(requested: str, ident: dict) -> str:
    """base64 (wire-efficient) unless the board decodes it in Python, then bytes literals."""
    if requested != "auto":
        return requested
    return "base64" if ident.get("native_base64", True) else "literal"


def _chunk_command(piece: bytes, encoding: str) -> str:
    if encoding == "base64":
        return "_mw(b'%s')" % binascii.b2a_base64(piece, newline=False).decode()
    return "_mx(%r)" % piece


def write_file(repl: RawRepl, f: BoardFile, on_bytes: Callable[[int], None],
               chunk: int = CHUNK, encoding: str = "base64") -> None:
    """Write F to a temporary name, verify its SHA-256 on the board, rename it into place."""
    tmp = f.path + TMP_SUFFIX
    parent = f.path.rsplit("/", 1)[0]
    for attempt in (1, 2):
        fallback_before = repl.raw_paste_fallback
        pieces = [f.data[i:i + chunk] for i in range(0, len(f.data), chunk)] or [b""]
        # Fold opening into the first command and closing/verifying into the last one: a
        # small file costs a single round trip.
        answer: object = None
        for k, piece in enumerate(pieces):
            cmd = _chunk_command(piece, encoding)
            if k == 0:
                cmd = "_md(%r)\n_mo(%r)\n" % (parent, tmp) + cmd
            if k == len(pieces) - 1:
                cmd += "\n_mc(%r,%r,%r)" % (tmp, f.path, f.sha256)
                out = repl.exec(cmd, timeout=60)
            else:
                repl.exec(cmd)
            on_bytes(len(piece))
        if repl.raw_paste_fallback != fallback_before and attempt == 1:
            # The session fell back from raw-paste mid-file: a chunk may be doubled; redo.
            on_bytes(-len(f.data))
            continue
        answer = _last_json(out)
        if not isinstance(answer, dict) or not answer.get("ok"):
            got = answer.get("got") if isinstance(answer, dict) else None
            raise VerifyError(
                "verification failed for %s: the board holds SHA-256 %s, expected %s"
                % (f.path, got, f.sha256),
                "the file was not put in place; check the cable and the board's storage, "
                "then deploy again")
        return


def selfcheck(repl: RawRepl, slot: str) -> dict:
    """Import the deployed core from SLOT on the board and run its self-check."""
    code = (
        "import sys,json\n"
        "for _k in list(sys.modules):\n"
        " if _k=='firmware' or _k.startswith('firmware.'):del sys.modules[_k]\n"
        "sys.path.insert(0,%r)\n"
        "try:\n"
        " from firmware.core import selfcheck as _sc\n"
        " _r=_sc.run();_r['line']=_sc.line(_r)\n"
        "finally:\n"
        " sys.path.remove(%r)\n"
        "print(json.dumps(_r))\n" % (slot, slot)
    )
    got = _last_json(repl.exec(code, timeout=60))
    if not isinstance(got, dict):
        raise TargetError("the self-check answered with the wrong shape")
    return got


def deploy(repl: RawRepl, board: Board, files: list[BoardFile],
           progress: Callable[[int, int], None] | None = None, chunk: int = CHUNK,
           encoding: str = "auto") -> DeployResult:
    """Bring the board's files to FILES (only those whose hash differs are sent)."""
    t0 = time.monotonic()
    result = DeployResult()
    result.identity = start(repl, board, files)
    result.encoding = choose_encoding(encoding, result.identity)
    hashes = remote_hashes(repl, [f.path for f in files])
    todo = [f for f, h in zip(files, hashes, strict=True) if h != f.sha256]
    total = sum(len(f.data) for f in todo)
    done = [0]

    def on_bytes(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], total)

    if progress is not None:
        progress(0, total)
    for f in files:
        send = f in todo
        if send:
            write_file(repl, f, on_bytes, chunk, result.encoding)
            result.transferred_bytes += len(f.data)
        result.files.append({"path": f.path, "sha256": f.sha256, "bytes": len(f.data),
                             "transferred": send})
    result.raw_paste = "used" if repl.use_raw_paste else "off: " + (
        repl.raw_paste_fallback or "disabled")
    result.seconds = time.monotonic() - t0
    return result
