"""Locate an access log (state dir, accesslog folder, uploaded copy or one segment) and its keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from firmware.common.accesslog.files import DATA_LABEL, list_segments, load_bundle, load_seal
from firmware.common.kek import device_kek, kek_path, unwrap
from firmware.core.accesslog import docs
from firmware.core.accesslog.chain import unhex
from firmware.core.errors import ConfigError, MamoriError, ProtocolError

MAX_HEADS = 64 * 1024 * 1024  # one line per checkpoint, for years


class LogSource:
    """Segments plus whatever key material is available for them."""

    def __init__(self) -> None:
        self.kind = ""
        self.path = Path()
        self.segments: list[tuple[int, Path]] = []
        self.key0: bytes | None = None
        self.pub: bytes | None = None
        self.data_key: bytes | None = None
        self.log_id: str | None = None
        self.heads: list[dict[str, Any]] = []
        self.key_epoch: int | None = None
        self.key_now: bytes | None = None
        self.notes: list[str] = []

    def read_segments(self) -> Iterator[tuple[str, int, bytes, bool]]:
        """(name, number, bytes, is_last) of every segment, oldest first."""
        for i, (n, p) in enumerate(self.segments):
            try:
                data = p.read_bytes()
            except OSError as exc:
                raise ConfigError("cannot read %s: %s" % (p, exc.strerror))
            yield p.name, n, data, i == len(self.segments) - 1


def _read(path: Path, limit: int) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(limit + 1)
    except OSError as exc:
        raise ConfigError("cannot read: %s" % (exc.strerror or exc), source=str(path))


def _load_bundle_file(src: LogSource, path: Path) -> None:
    try:
        doc = docs.parse(_read(path, docs.MAX_DOC), "platform key file", docs.PLATFORM_KEYS)
    except ProtocolError as exc:
        raise ConfigError("not a Mamori platform key file: " + exc.message, source=str(path),
                          hint="expected the JSON the gateway uploaded (log_id, pub, key0)")
    src.log_id = str(doc["log_id"])
    src.pub = unhex(doc["pub"])
    src.key0 = unhex(doc["key0"]) if doc.get("key0") else None
    src.data_key = unhex(doc["data_key"]) if doc.get("data_key") else None


def _load_heads(src: LogSource, path: Path) -> None:
    raw = _read(path, MAX_HEADS)
    if len(raw) > MAX_HEADS:
        raise ConfigError("heads file is larger than %d bytes" % MAX_HEADS, source=str(path))
    for i, line in enumerate(raw.splitlines()):
        if not line.strip():
            continue
        try:
            src.heads.append(docs.parse(line, "head", docs.CHECKPOINT))
        except ProtocolError as exc:
            raise ConfigError("line %d is not a checkpoint head: %s" % (i + 1, exc.message),
                              source=str(path), hint="one checkpoint JSON per line")


def _state_keys(src: LogSource, state_dir: Path, log_dir: Path) -> None:
    try:
        kek = device_kek(state_dir, create=False)
    except MamoriError:
        src.notes.append("no device key: the log's own keys cannot be unwrapped")
        return
    try:
        bundle = load_bundle(state_dir, log_dir)
        if bundle is not None:
            src.key0 = unhex(bundle["key0"])
            src.pub = unhex(bundle["pub"])
            src.notes.append("using the gateway's not-yet-uploaded verification key")
        else:
            src.notes.append("verification key already uploaded: give the platform's copy "
                             "with --key to check seals")
        src.data_key = unwrap(kek, (log_dir / "keys" / "data.key").read_bytes(), DATA_LABEL)
        seal = load_seal(state_dir, log_dir)
        src.key_epoch = seal.epoch
        src.key_now = seal.key
    except FileNotFoundError as exc:
        src.notes.append("key file missing: %s (crypto-erased?)" % Path(str(exc.filename)).name)
    except MamoriError as exc:
        src.notes.append("gateway keys unusable: " + exc.message)


def open_source(path: Path, key_file: Path | None = None,
                heads_file: Path | None = None) -> LogSource:
    """Resolve PATH into a LogSource; ConfigError when there is no access log there."""
    path = Path(path)
    src = LogSource()
    src.path = path
    if not path.exists():
        raise ConfigError("no such file or directory", source=str(path))
    if path.is_file():
        src.kind = "segment"
        src.segments = [(_number(path), path)]
    elif (path / "accesslog").is_dir():
        src.kind = "state-dir"
        src.segments = list_segments(path / "accesslog")
        _state_keys(src, path, path / "accesslog")
    elif (path / "platform-keys.json").exists() or (path / "heads.jsonl").exists():
        src.kind = "uploaded-copy"
        src.segments = list_segments(path)
        if (path / "platform-keys.json").exists():
            _load_bundle_file(src, path / "platform-keys.json")
        if (path / "heads.jsonl").exists():
            _load_heads(src, path / "heads.jsonl")
    elif (path / "log.json").exists() or (path / "keys").is_dir() or list_segments(path):
        src.kind = "accesslog-dir"
        src.segments = list_segments(path)
        if kek_path(path.parent).exists():
            _state_keys(src, path.parent, path)
    else:
        raise ConfigError("no access log here", source=str(path),
                          hint="give a gateway state dir, its accesslog/ folder, an uploaded "
                               "copy or a seg-*.log file")
    if key_file is not None:
        _load_bundle_file(src, key_file)
    if heads_file is not None:
        _load_heads(src, heads_file)
    if not src.segments:
        raise ConfigError("no access-log segments (seg-*.log) found", source=str(path))
    return src


def _number(path: Path) -> int:
    digits = "".join(c for c in path.stem if c.isdigit())
    return int(digits) if digits else 0
