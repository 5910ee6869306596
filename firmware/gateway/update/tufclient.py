"""The gateway's TUF client layer: python-tuf ngclient plus Mamori's floors and caching.

Non-versioned file names in the metadata dir (root.json, timestamp.json, ...), expiry judged
against max(clock, persisted time floor), every python-tuf refusal mapped to a clear error. The
time floor is read here but never written: the agent raises it only once a release is accepted,
from the signing time in the verified top-level timestamp metadata (`timestamp_times`).
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import Metadata, TargetFile, Timestamp
from tuf.ngclient import Updater, UpdaterConfig

from firmware.core.errors import ConfigError, IntegrityError, MamoriError, ProtocolError
from firmware.core.update.floors import SIGNED_AT, new_floors, reference_time
from firmware.gateway.update.fetch import Fetcher
from firmware.gateway.update.store import read_json


class _Updater(Updater):
    """ngclient Updater that keeps only a non-versioned root.json in the metadata dir."""

    def _persist_root(self, version: int, data: bytes) -> None:
        self._persist_file(os.path.join(self._dir, "root.json"), data)

    def _update_root_symlink(self) -> None:
        return None


def explain(exc: BaseException) -> MamoriError:
    """Turn a python-tuf exception into an actionable Mamori error naming the attack refused."""
    msg = str(exc)
    if isinstance(exc, tuf_exc.UnsignedMetadataError):
        return IntegrityError("metadata refused: not signed by enough trusted keys (%s)" % msg,
                              "forged, wrongly signed or signed with a rotated-out key")
    if isinstance(exc, tuf_exc.BadVersionNumberError):
        return IntegrityError("rollback attack refused: %s" % msg,
                              "the server offers older metadata than this gateway trusts")
    if isinstance(exc, tuf_exc.ExpiredMetadataError):
        return IntegrityError("freeze attack refused: %s" % msg,
                              "the repository must re-sign its metadata")
    if isinstance(exc, tuf_exc.DownloadLengthMismatchError):
        return IntegrityError("endless-data attack refused: %s" % msg,
                              "metadata larger than its allowed size")
    if isinstance(exc, tuf_exc.LengthOrHashMismatchError):
        return IntegrityError("metadata or target does not match its signed hash: %s" % msg,
                              "mix-and-match or substitution refused")
    if isinstance(exc, tuf_exc.RepositoryError):
        return IntegrityError("repository metadata refused: %s" % msg,
                              "inconsistent snapshot (mix-and-match) or malformed metadata")
    if isinstance(exc, tuf_exc.DownloadHTTPError):
        return ProtocolError("update server answered HTTP %d: %s" % (exc.status_code, msg))
    if isinstance(exc, tuf_exc.DownloadError):
        return ProtocolError("cannot download from the update server: %s" % msg,
                             "check the network; retry later")
    if isinstance(exc, MamoriError):
        return exc
    return ProtocolError("update check failed: %s" % msg)


class TufClient:
    """One refresh-and-lookup session against a repository (like ngclient, single use)."""

    def __init__(self, metadata_dir: Path, metadata_url: str, *,
                 target_base_url: str | None = None, target_dir: Path | None = None,
                 floors_path: Path | None = None, fetcher: Fetcher | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.metadata_dir = metadata_dir
        self.floors_path = floors_path or metadata_dir / "mamori-floors.json"
        self.fetcher = fetcher or Fetcher()
        self.clock = clock
        if not (metadata_dir / "root.json").is_file():
            raise ConfigError("no trusted root metadata", str(metadata_dir / "root.json"),
                              hint="provision the gateway's trusted root first")
        try:
            self.updater = _Updater(
                str(metadata_dir), _slash(metadata_url),
                str(target_dir) if target_dir else None,
                _slash(target_base_url) if target_base_url else None,
                fetcher=self.fetcher, config=UpdaterConfig(), bootstrap=None)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a clear refusal
            raise explain(exc)
        ref = self._reference_time()
        self.updater._trusted_set.reference_time = datetime.datetime.fromtimestamp(
            ref, datetime.UTC)

    def _reference_time(self) -> float:
        """max(clock, time floor); a floor beyond the expiry of the timestamp metadata this
        gateway last verified is refused and that timestamp's own signing time used instead."""
        local = self.metadata_dir / "timestamp.json"
        signed_at, expires = 0.0, 0.0
        if local.is_file():
            try:
                signed_at, expires = signed_times(
                    Metadata[Timestamp].from_bytes(local.read_bytes()).signed)
            except Exception:  # noqa: BLE001 - an unreadable local copy bounds nothing
                signed_at, expires = 0.0, 0.0
        ref = reference_time(self.clock(), self.floors(), expires)
        return ref if ref > signed_at else signed_at

    def floors(self) -> dict[str, Any]:
        """The persisted never-go-back floors."""
        data: dict[str, Any] = read_json(self.floors_path, new_floors())
        return data

    def refresh(self) -> None:
        """Refresh top-level metadata (root chain, timestamp, snapshot, targets)."""
        try:
            self.updater.refresh()
        except Exception as exc:  # noqa: BLE001
            raise explain(exc)

    def target(self, path: str) -> TargetFile | None:
        """Verified target info for `path` (delegations followed), or None if not listed."""
        try:
            return self.updater.get_targetinfo(path)
        except Exception as exc:  # noqa: BLE001
            raise explain(exc)

    def timestamp_times(self) -> tuple[float, float]:
        """(signed at, expires) of the timestamp metadata verified by `refresh`; signed-at is 0
        when the repository does not state it. Refused when it claims a signing time beyond
        its own expiry."""
        timestamp = self.updater._trusted_set.timestamp
        if timestamp is None:
            raise ProtocolError("no verified timestamp metadata", "refresh first")
        return signed_times(timestamp)

    def download(self, info: TargetFile) -> str:
        """Download a target into the target dir unless an identical copy is cached there."""
        try:
            cached = self.updater.find_cached_target(info)
            if cached:
                return cached
            return self.updater.download_target(info)
        except Exception as exc:  # noqa: BLE001
            raise explain(exc)


def signed_times(timestamp: Timestamp) -> tuple[float, float]:
    """(signed at, expires) of timestamp metadata; IntegrityError for a malformed or impossible
    signing time (not a whole number of seconds, or later than the metadata's own expiry)."""
    expires = timestamp.expires.timestamp()
    value = timestamp.unrecognized_fields.get(SIGNED_AT, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise IntegrityError("timestamp metadata has a malformed %s" % SIGNED_AT,
                             "the repository must sign whole seconds since the epoch")
    if value > expires:
        raise IntegrityError("timestamp metadata claims it was signed after it expires",
                             "a time floor beyond the verified timestamp is refused")
    return float(value), expires


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
