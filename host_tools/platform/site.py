"""Which files of a site directory the platform tools use (adapt here if the layout changes).

Assumed layout (created by ``mamori provision init-site DIR``)::

    platform/ca.pem                CA chain that signed the broker's certificate (pinned)
    platform/client.pem/.key       the platform's TLS client certificate and key (commands)
    platform/watch.pem/.key        its read-only monitoring identity (``watch``; optional)
    platform/command-signing.key   the site's Ed25519 command-signing key (PKCS#8 PEM)

The broker binds each MQTT session to its certificate, so one identity holds one session at a
time: ``mamori platform watch`` uses the watch identity (when the site has one) so that it can
run beside the commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from firmware.core.errors import ConfigError

LAYOUT = {
    "ca": "platform/ca.pem",
    "client_cert": "platform/client.pem",
    "client_key": "platform/client.key",
    "command_key": "platform/command-signing.key",
}


@dataclass(frozen=True)
class PlatformSite:
    """Paths of the platform's credentials in a site directory."""

    root: Path
    ca: Path
    client_cert: Path
    client_key: Path
    command_key: Path

    def signing_key(self) -> Ed25519PrivateKey:
        """Load the site's command-signing key (never printed)."""
        try:
            key = serialization.load_pem_private_key(self.command_key.read_bytes(), None)
        except (OSError, ValueError, TypeError):
            raise ConfigError("cannot load the command-signing key", str(self.command_key),
                              hint="is this the site directory from `mamori provision "
                                   "init-site`?")
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError("command-signing key is not Ed25519", str(self.command_key))
        return key

    def escrow_key(self) -> X25519PrivateKey:
        """The site's access-log escrow key (HPKE recipient; never printed)."""
        path = self.root / "platform" / "log-escrow.key"
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), None)
        except (OSError, ValueError, TypeError):
            raise ConfigError("cannot load the log-escrow key", str(path),
                              hint="sites made before access-log escrow lack it")
        if not isinstance(key, X25519PrivateKey):
            raise ConfigError("log-escrow key is not X25519", str(path))
        return key


WATCH = {"client_cert": "platform/watch.pem", "client_key": "platform/watch.key"}


def load_site(root: Path, need_signing_key: bool = False, watch: bool = False) -> PlatformSite:
    """The platform files of a site directory; ConfigError naming the first one missing.

    `watch`: use the read-only monitoring identity when the site has one.
    """
    root = Path(root)
    paths = {k: root / v for k, v in LAYOUT.items()}
    if watch and all((root / v).is_file() for v in WATCH.values()):
        paths.update({k: root / v for k, v in WATCH.items()})
    needed = [k for k in LAYOUT if k != "command_key" or need_signing_key]
    for k in needed:
        if not paths[k].is_file():
            raise ConfigError(f"missing {LAYOUT[k]}", str(root),
                              hint="create the site with `mamori provision init-site DIR`")
    return PlatformSite(root, paths["ca"], paths["client_cert"], paths["client_key"],
                        paths["command_key"])
