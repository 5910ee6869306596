"""An offline repository copy as a tar file: unpacked without tarfile's `filter` argument
(Debian 12's Python 3.11.2, the board's, has none: the update died with a TypeError there), and
anything but folders and regular files inside the destination is refused by name."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from firmware.core.errors import ConfigError
from firmware.gateway.update.offlinecopy import extract_copy


def _tar(path: Path, *members: tuple[str, bytes | None, bytes]) -> Path:
    """(name, data or None for a folder, type) members."""
    with tarfile.open(path, "w") as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = "/etc/passwd"
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def test_copy_unpacks_without_extractall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_extractall(*args: object, **kw: object) -> None:
        raise TypeError("extractall() got an unexpected keyword argument 'filter'")

    monkeypatch.setattr(tarfile.TarFile, "extractall", no_extractall)  # as on Python 3.11.2
    src = _tar(tmp_path / "copy.tar", ("metadata", None, tarfile.DIRTYPE),
               ("metadata/root.json", b"{}", tarfile.REGTYPE),
               ("targets/sim/a.bundle", b"bundle", tarfile.REGTYPE))
    extract_copy(src, tmp_path / "out")
    assert (tmp_path / "out" / "metadata" / "root.json").read_bytes() == b"{}"
    assert (tmp_path / "out" / "targets" / "sim" / "a.bundle").read_bytes() == b"bundle"


@pytest.mark.parametrize("name,kind", [("../escape.json", tarfile.REGTYPE),
                                       ("/abs.json", tarfile.REGTYPE),
                                       ("metadata/link", tarfile.SYMTYPE),
                                       ("metadata/dev", tarfile.CHRTYPE)])
def test_hostile_members_refused_by_name_before_writing(tmp_path: Path, name: str,
                                                        kind: bytes) -> None:
    data = b"x" if kind == tarfile.REGTYPE else None
    src = _tar(tmp_path / "evil.tar", ("metadata/ok.json", b"{}", tarfile.REGTYPE),
               (name, data, kind))
    with pytest.raises(ConfigError, match="never does") as exc:
        extract_copy(src, tmp_path / "out")
    assert repr(name) in str(exc.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.json").exists()


def test_not_a_tar_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "copy.tar"
    bad.write_bytes(b"not a tar file at all" * 50)
    with pytest.raises(ConfigError, match="readable tar"):
        extract_copy(bad, tmp_path / "out")
