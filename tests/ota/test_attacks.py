"""Every TUF attack class is refused with a clear error and nothing reaches the inactive slot."""

from __future__ import annotations

import shutil
import time
from typing import Any

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import TargetFile

from firmware.core.errors import IntegrityError, MamoriError, PolicyError, StateError
from host_tools.release.repo import ReleaseRepo
from tests.ota.helpers import Env, tree_digest


def _ready(env: Env) -> str:
    """Install 1.0 then 1.1 so both slots hold images; return the inactive slot name."""
    env.publish("1.0")
    assert env.agent().run()["result"] == "installed"
    env.publish("1.1")
    res = env.agent().run()
    assert res["result"] == "installed" and res["version"] == "1.1"
    return "b" if res["slot"] == "a" else "a"


def _refused(env: Env, inactive: str, exc_type: type[MamoriError], *words: str) -> str:
    before = tree_digest(env.slot(inactive))
    with pytest.raises(exc_type) as info:
        env.agent().run()
    msg = str(info.value)
    for w in words:
        assert w in msg, msg
    assert tree_digest(env.slot(inactive)) == before, "the inactive slot was written"
    assert env.agent().record()["state"] in ("committed", "rolled_back", "downloading")
    return msg


def test_arbitrary_image_substituted_on_server(env: Env) -> None:
    inactive = _ready(env)
    env.publish("1.2")
    env.server.overrides[env.bundle_url_path({})] = b"evil firmware" * 500
    _refused(env, inactive, IntegrityError, "does not match its signed hash")


def test_unsigned_or_wrongly_signed_metadata(env: Env) -> None:
    inactive = _ready(env)
    attacker = CryptoSigner.generate_ed25519()

    def add_evil(signed: Any) -> None:
        signed.targets["sim/firmware.bundle"] = TargetFile(10, {"sha256": "0" * 64},
                                                           "sim/firmware.bundle")
    env.resign("sim", add_evil, signers=[attacker])
    _refused(env, inactive, IntegrityError, "not signed by enough trusted keys")
    env.resign("sim", add_evil, signers=[])
    _refused(env, inactive, IntegrityError, "not signed by enough trusted keys")


def test_rollback_of_metadata(env: Env) -> None:
    inactive = _ready(env)
    old_ts = (env.repo.meta_dir / "timestamp.json").read_bytes()
    env.publish("1.2")
    env.publish("1.3")
    env.agent().run()  # gateway now trusts the newest timestamp
    inactive = "b" if inactive == "a" else "a"
    env.server.overrides["/metadata/timestamp.json"] = old_ts
    _refused(env, inactive, IntegrityError, "rollback attack refused")


def test_freeze_expired_metadata(tmp_path: Any) -> None:
    env = Env(tmp_path, lifetimes={"timestamp": 3600.0})
    try:
        inactive = _ready(env)
        # The repository stops re-signing; two hours later the timestamp has expired.
        later = time.time() + 7200
        _refused_clock(env, inactive, later)
        # A board without RTC boots with its clock reset to the past: the time floor holds.
        env.repo.clock = lambda: time.time() - 10 * 86400
        env.publish("1.5")  # signed release time 10 days ago, timestamp expired 10 days ago
        agent = env.agent(clock=lambda: time.time() - 30 * 86400)
        with pytest.raises(IntegrityError, match="freeze attack refused"):
            agent.run()
    finally:
        env.close()


def _refused_clock(env: Env, inactive: str, now: float) -> None:
    before = tree_digest(env.slot(inactive))
    with pytest.raises(IntegrityError, match="freeze attack refused"):
        env.agent(clock=lambda: now).run()
    assert tree_digest(env.slot(inactive)) == before


def test_mix_and_match(env: Env) -> None:
    inactive = _ready(env)
    old_sim = env.repo._load("sim", __import__("tuf.api.metadata").api.metadata.Targets)
    old_bytes = (env.repo.meta_dir / ("%d.sim.json" % old_sim.signed.version)).read_bytes()
    env.publish("1.2")
    new_v = old_sim.signed.version + 1
    # The server answers the snapshot's sim version with an older (validly signed) sim file.
    env.server.overrides["/metadata/%d.sim.json" % new_v] = old_bytes
    _refused(env, inactive, IntegrityError, "refused")


def test_endless_metadata_and_image(env: Env) -> None:
    inactive = _ready(env)
    env.server.overrides["/metadata/timestamp.json"] = b"{" + b" " * 100_000
    _refused(env, inactive, IntegrityError, "endless-data")
    del env.server.overrides["/metadata/timestamp.json"]
    env.publish("1.2")
    env.server.overrides[env.bundle_url_path({})] = b"A" * 50_000
    env.server.raw_paths.add(env.bundle_url_path({}))
    _refused(env, inactive, IntegrityError, "more than the signed", "endless-data")


def test_wrong_board(env: Env) -> None:
    inactive = _ready(env)

    def relabel(signed: Any) -> None:
        signed.targets["sim/firmware.bundle"].unrecognized_fields["custom"]["mamori"][
            "board"] = "rpi4"
        signed.targets["sim/firmware.bundle"].unrecognized_fields["custom"]["mamori"][
            "version"] = "9.0"
    env.resign("sim", relabel)
    _refused(env, inactive, IntegrityError, "wrong-board")


def test_no_release_for_this_board(tmp_path: Any) -> None:
    env = Env(tmp_path)
    try:
        with pytest.raises(StateError, match="no release for board sim"):
            env.agent().run()
        assert not env.slot("b").exists()
    finally:
        env.close()


def test_rotated_out_compromised_key(env: Env) -> None:
    inactive = _ready(env)
    stolen = env.repo.keys.signers("sim")
    env.repo.rotate_key("sim")
    env.publish("1.2")  # legit release signed with the new key installs fine
    assert env.agent().run()["version"] == "1.2"
    inactive = "b" if inactive == "a" else "a"

    def evil(signed: Any) -> None:
        signed.targets["sim/firmware.bundle"].unrecognized_fields["custom"]["mamori"][
            "version"] = "6.6"
    env.resign("sim", evil, signers=stolen)
    _refused(env, inactive, IntegrityError, "not signed by enough trusted keys")


def test_root_and_targets_rotation_followed_by_gateway(env: Env) -> None:
    _ready(env)
    old_root = env.repo.keys.signers("root")[0]
    env.repo.rotate_key("root")
    env.repo.rotate_key("targets")
    env.repo.rotate_key("timestamp")
    assert old_root.public_key.keyid not in env.repo.keys.keyids("root")
    env.publish("1.2")
    assert env.agent().run()["version"] == "1.2"
    assert (env.state / "update" / "tuf" / "root.json").read_bytes() == (
        env.repo.meta_dir / "root.json").read_bytes()


def test_below_minimum_installable_version(env: Env) -> None:
    inactive = _ready(env)
    env.publish("2.0", min_version="2.0", health_rc=1)
    res = env.agent().run()
    assert res["result"] == "rolled_back" and res["version"] == "1.1"
    assert env.agent().floors()["version"] == "2.0"

    def older(signed: Any) -> None:
        tf = signed.targets["sim/firmware.bundle"]
        tf.unrecognized_fields["custom"]["mamori"]["version"] = "1.5"
        tf.unrecognized_fields["custom"]["mamori"]["min_version"] = ""
    env.resign("sim", older)
    _refused(env, inactive, PolicyError, "below the minimum installable version 2.0")

    def inconsistent(signed: Any) -> None:
        signed.targets["sim/firmware.bundle"].unrecognized_fields["custom"]["mamori"][
            "min_version"] = "1.6"
    env.resign("sim", inconsistent)
    _refused(env, inactive, PolicyError, "below its own minimum")


def test_rollback_to_older_signed_release(env: Env) -> None:
    inactive = _ready(env)

    def older(signed: Any) -> None:
        signed.targets["sim/firmware.bundle"].unrecognized_fields["custom"]["mamori"][
            "version"] = "1.0"
    env.resign("sim", older)
    _refused(env, inactive, PolicyError, "rollback refused")


def test_release_tool_refuses_going_backwards(env: Env) -> None:
    env.publish("1.0", min_version="1.0")
    with pytest.raises(PolicyError, match="not newer"):
        env.publish("0.9")
    with pytest.raises(PolicyError, match="above the release"):
        env.publish("1.1", min_version="1.2")
    shutil.rmtree(env.tmp / "payload-1.0")
    assert isinstance(env.repo, ReleaseRepo)
