"""The provisioned admin-credential file piped as it is: its header line is not the credential
(a newcomer piped `<bundle>.admin-credential` into `reset --resale` and got "wrong admin
credential", and the refusal spoke of an offline update)."""

from __future__ import annotations

from pathlib import Path

from tests.ota.helpers import gateway_cli
from tests.provisioning.sitekit import Kit

NEW = "Piped-File-Pass-6081"


def test_the_credential_file_piped_as_it_is(tmp_path: Path) -> None:
    kit = Kit(tmp_path, level=3)
    cred_file = Path(str(kit.bundle) + ".admin-credential").read_text()
    assert cred_file.startswith("Initial admin credential for gateway ")  # as provisioned
    changed = gateway_cli("admin", "set-password", "--state-dir", str(kit.state),
                          input=cred_file + NEW + "\n")
    assert changed.returncode == 0, changed.stderr
    # The file as `mamori commission` rewrites it after the change: piped into an operator verb.
    header = "Admin credential of gateway gw1 (changed at installation; keep it secret):"
    wrong = gateway_cli("reset", "--resale", "--state-dir", str(kit.state), "--yes",
                        "--escrow-to", str(tmp_path / "escrow"), input=header + "\nnot-it\n")
    assert wrong.returncode != 0 and "wrong admin credential" in wrong.stderr
    none = gateway_cli("reset", "--resale", "--state-dir", str(kit.state), "--yes",
                       "--escrow-to", str(tmp_path / "escrow"))
    assert none.returncode != 0 and "resale reset" in none.stderr
    assert "offline update" not in none.stderr and "Traceback" not in none.stderr
    done = gateway_cli("reset", "--resale", "--state-dir", str(kit.state), "--yes",
                       "--escrow-to", str(tmp_path / "escrow"), input=header + "\n" + NEW + "\n")
    assert done.returncode == 0, done.stderr
