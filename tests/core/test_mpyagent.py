"""Portable tests of the MicroPython device agent's sans-network parts (every port + CPython)."""

from firmware.core import frames
from firmware.core.errors import AuthError, ConfigError, StateError
from firmware.device.portable import mpyagent, mpycli
from tests.core.portable import FakeClock, raises

CREDS = {"device_id": "pico-1", "maker": "Acme", "model": "Pico", "gateway_id": "gw1",
         "gateway_sha256": mpyagent.sha256_hex(b"the gateway's certificate"),
         "three_star": ["open"]}


class FakeLink:
    """What the gateway sends, one read at a time; what the agent wrote."""

    def __init__(self, reads: list, clock: FakeClock) -> None:
        self.reads = reads
        self.sent = []
        self.clock = clock

    def send(self, data: bytes) -> None:
        self.sent += frames.FrameDecoder().feed(data)

    def recv(self, wait: float) -> "bytes | None":
        if not self.reads:
            self.clock.advance(wait)
            return None
        return self.reads.pop(0)


def test_the_gateway_is_recognised_by_its_certificate_hash() -> None:
    assert mpyagent.check_gateway(b"the gateway's certificate", CREDS) == "gw1"
    why = raises(AuthError, mpyagent.check_gateway, b"another gateway's certificate", CREDS)
    assert "not gateway 'gw1'" in why.message
    assert "no certificate" in raises(AuthError, mpyagent.check_gateway, None, CREDS).message


def test_no_ed25519_means_no_three_star_action_at_all() -> None:
    agent = mpyagent.new_agent(CREDS, "lock", 1.0)
    hello = frames.FrameDecoder().feed(agent.hello(0))[0]
    assert hello["verifies"] == [] and hello["model"] == "Pico"
    agent.receive(frames.encode({"type": "welcome", "gateway": "gw1"}), 0)
    for action in ("unlock", "open"):  # a default one and the model's own
        res = frames.FrameDecoder().feed(agent.receive(frames.encode(
            {"type": "cmd", "cid": "1", "action": action}), 1))[0]
        assert res["ok"] is False and res["refused"] == "cannot-verify"
    res = frames.FrameDecoder().feed(agent.receive(frames.encode(
        {"type": "cmd", "cid": "2", "action": "lock"}), 1))[0]
    assert res["ok"] is True and res["actual"] == {"locked": True}


def test_drive_says_hello_heartbeats_and_answers_commands() -> None:
    clock = FakeClock(100.0)
    agent = mpyagent.new_agent(CREDS, "lock", 0.5)
    link = FakeLink([frames.encode({"type": "welcome", "gateway": "gw1"}),
                     frames.encode({"type": "cmd", "cid": "7", "action": "unlock"})], clock)
    assert mpyagent.drive(agent, link, clock, heartbeats=3) == 3
    kinds = [m["type"] for m in link.sent]
    assert kinds[0] == "hello" and kinds.count("hb") == 3 and "result" in kinds
    result = [m for m in link.sent if m["type"] == "result"][0]
    assert result["cid"] == "7" and result["refused"] == "cannot-verify"


def test_drive_refused_silent_or_closed_gateway() -> None:
    clock = FakeClock()
    refused = FakeLink([frames.encode({"type": "refused", "code": "tls-policy"})], clock)
    why = raises(AuthError, mpyagent.drive, mpyagent.new_agent(CREDS), refused, clock, 1)
    assert "older TLS version" in why.message
    silent = FakeLink([], clock)
    assert "did not welcome" in raises(StateError, mpyagent.drive, mpyagent.new_agent(CREDS),
                                       silent, clock, 1).message
    closed = FakeLink([b""], clock)
    raises(AuthError, mpyagent.drive, mpyagent.new_agent(CREDS), closed, clock, 1)


def test_command_line() -> None:
    opts = mpycli.parse_args(["--credentials", "d.mpy.json", "--gateway", "10.0.0.2:8883",
                                "--kind", "lock", "--once", "--mem"])
    assert opts["host"] == "10.0.0.2" and opts["port"] == 8883 and opts["heartbeats"] == 1
    assert opts["mem"] is True and opts["kind"] == "lock"
    for bad in (["--gateway", "h:1"], ["--credentials", "x", "--gateway", "nohost"],
                ["--credentials", "x", "--gateway", "h:1", "--kind", "toaster"],
                ["--credentials", "x", "--gateway", "h:1", "--interval", "nan"],
                ["--credentials", "x", "--gateway", "h:1", "--bogus", "1"]):
        raises(ConfigError, mpycli.parse_args, bad)


DESC = {"format": "mamori-mpy-device/1", "device_id": "pico-1", "maker": "Acme", "model": "Pico",
        "site_id": "site-1", "gateway_id": "gw1", "gateway_sha256": "ab" * 32,
        "three_star": ["open"], "files": {"certificate": "d.cert.der",
                                          "private_key": "d.key.der", "ca": "d.ca.der"}}


def _bad(field: str, **over: object) -> None:
    doc = dict(DESC)
    for k in over:
        doc[k] = over[k]
    assert raises(ConfigError, mpyagent.check_descriptor, doc, "d.mpy.json").field == field


def test_descriptor_fields_are_checked_one_by_one() -> None:
    assert mpyagent.check_descriptor(dict(DESC), "d.mpy.json")["gateway_id"] == "gw1"
    _bad("extra", extra=1)
    _bad("format", format="mamori-mpy-device/2")
    _bad("device_id", device_id="../etc")
    _bad("gateway_id", gateway_id="")
    _bad("gateway_sha256", gateway_sha256="AB" * 32)
    _bad("gateway_sha256", gateway_sha256="ab" * 31)
    _bad("maker", maker=7)
    _bad("three_star", three_star="unlock")
    _bad("files.ca", files={"certificate": "c", "private_key": "k", "ca": "../../etc/passwd"})
    _bad("files.ca", files={"certificate": "c", "private_key": "k", "ca": ".hidden"})
    _bad("files.other", files={"certificate": "c", "private_key": "k", "ca": "a", "other": "x"})
    _bad("files.private_key", files={"certificate": "c", "ca": "a"})
