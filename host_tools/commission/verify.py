"""Loading the key that verifies a gateway's signed self-test reports (on the host)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from firmware.core.errors import ConfigError, IntegrityError
from firmware.gateway.selftest.signing import PublicKey


def load_public(path: Path) -> PublicKey:
    """A report-signing public key (Ed25519 or P-256), with a clear error."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    hint = ("give the gateway's report-signing.pub.pem (beside record.json in "
            "SITE/commissioning/GW/)")
    try:
        pub = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError("no such key file", str(path), hint=hint)
    except OSError as exc:
        raise ConfigError("cannot read the key file: %s" % (exc.strerror or exc), str(path),
                          hint=hint)
    except ValueError:
        raise ConfigError("is not a PEM public key (a certificate or private key will not do)",
                          str(path), hint=hint)
    if not isinstance(pub, (ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey)):
        raise ConfigError("report keys are Ed25519 or EC P-256", str(path))
    return pub


RECORD_FORMAT = "mamori-commissioning-record/1"


def report_of_record(record: dict[str, Any], record_path: Path) -> tuple[Path, str]:
    """The signed report a commissioning record names (beside it) and the report's SHA-256."""
    name, digest = record.get("report"), record.get("report_sha256")
    if not isinstance(name, str) or not name or "/" in name or name.startswith(".") \
            or not isinstance(digest, str):
        raise IntegrityError("the commissioning record %s names no signed report" % record_path)
    return record_path.parent / name, digest
