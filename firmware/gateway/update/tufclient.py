"""The gateway's TUF client layer: python-tuf ngclient plus Mamori's floors and caching.

Non-versioned file names in the metadata dir (root.json, timestamp.json, ...), expiry judged
against max(clock, persisted time floor), every python-tuf refusal mapped to a clear error.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import TargetFile
from tuf.ngclient import Updater, UpdaterConfig

from firmware.core.errors import ConfigError, IntegrityError, MamoriError, ProtocolError
from firmware.core.update.floors import new_floors, raise_floors, reference_time
from firmware.gateway.update.fetch import Fetcher
from firmware.gateway.update.store import read_json, write_json


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
        floors = self.floors()
        ref = reference_time(clock(), floors)
        self.updater._trusted_set.reference_time = datetime.datetime.fromtimestamp(
            ref, datetime.UTC)

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
            info = self.updater.get_targetinfo(path)
        except Exception as exc:  # noqa: BLE001
            raise explain(exc)
        if info is not None:
            custom = info.unrecognized_fields.get("custom", {})
            mamori = custom.get("mamori", {}) if isinstance(custom, dict) else {}
            released = mamori.get("released_at") if isinstance(mamori, dict) else None
            if isinstance(released, (int, float)) and released > 0:
                floors = self.floors()
                raised = raise_floors(floors, released_at=float(released))
                if raised != floors:
                    write_json(self.floors_path, raised)
        return info

    def download(self, info: TargetFile) -> str:
        """Download a target into the target dir unless an identical copy is cached there."""
        try:
            cached = self.updater.find_cached_target(info)
            if cached:
                return cached
            return self.updater.download_target(info)
        except Exception as exc:  # noqa: BLE001
            raise explain(exc)


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
