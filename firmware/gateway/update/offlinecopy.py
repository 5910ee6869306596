"""A repository copy brought as a tar file (USB stick): unpacked with the refusals of tarfile's
"data" filter, which Debian 12's Python 3.11.2 (the board's) does not have (CPython)."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path, PurePosixPath

from firmware.core.errors import ConfigError


def extract_copy(archive: Path, dest: Path) -> None:
    """Unpack ARCHIVE into DEST: folders and regular files only, every name inside DEST;
    anything else (links, devices, absolute or `..` names) is refused by name, before writing."""
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:
                name = PurePosixPath(m.name)
                if name.is_absolute() or ".." in name.parts or not (m.isfile() or m.isdir()):
                    raise ConfigError("holds %r, which a repository copy never does" % m.name,
                                      str(archive), hint="make the copy again from REPO/metadata "
                                      "and REPO/targets")
            for m in members:
                target = dest.joinpath(*PurePosixPath(m.name).parts)
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                assert src is not None  # a regular file
                with src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
    except (tarfile.TarError, EOFError) as exc:
        raise ConfigError("is not a readable tar file: %s" % exc, str(archive),
                          hint="copy the repository to the stick again") from None
