"""/proc/net parsing and the listener allowlist (no root needed)."""

from __future__ import annotations

import socket

from firmware.gateway.firewall import listeners

TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid
   0: 00000000:22B3 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0
   1: 0100007F:075B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0
   2: 0101630A:22B3 0201630A:D431 01 00000000:00000000 00:00000000 00000000     0
   3: 0101630A:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0
"""
TCP6 = """  sl  local_address                         remote_address                        st
   0: 00000000000000000000000001000000:0277 00000000000000000000000000000000:0000 0A
   1: 00000000000000000000000000000000:20FB 00000000000000000000000000000000:0000 0A
"""
UDP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid
  10: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0
  11: 0101630A:A000 08080808:0035 01 00000000:00000000 00:00000000 00000000     0
"""


def test_parse_proc_tables() -> None:
    tcp = listeners.parse(TCP, "tcp", 4)
    assert [(x.address, x.port) for x in tcp] == [
        ("0.0.0.0", 8883), ("127.0.0.1", 1883), ("10.99.1.1", 22)]  # ESTABLISHED skipped
    tcp6 = listeners.parse(TCP6, "tcp", 6)
    assert [(x.address, x.port) for x in tcp6] == [("::1", 631), ("::", 8443)]
    udp = listeners.parse(UDP, "udp", 4)
    assert [(x.address, x.port) for x in udp] == [("0.0.0.0", 5353)]  # connected one skipped
    assert listeners.parse("header only\n\n", "tcp", 4) == []


def test_allowlist() -> None:
    found = (listeners.parse(TCP, "tcp", 4) + listeners.parse(TCP6, "tcp", 6)
             + listeners.parse(UDP, "udp", 4))
    res = listeners.compare(found, {"tcp/8883", "tcp/8443"})
    assert sorted(u["key"] for u in res["unexpected"]) == ["tcp/22", "udp/5353"]
    assert not res["ok"]
    strict = listeners.compare(found, {"tcp/8883", "tcp/8443"}, allow_loopback=False)
    assert sorted(u["key"] for u in strict["unexpected"]) == [
        "tcp/1883", "tcp/22", "tcp/631", "udp/5353"]
    # The protocol matters: a UDP socket on a declared TCP port is not allowed.
    udp8883 = [listeners.Listener("udp", "0.0.0.0", 8883)]
    assert not listeners.compare(udp8883, {"tcp/8883"})["ok"]
    mapped = listeners.Listener("tcp", "::ffff:127.0.0.1", 9)
    assert mapped.loopback_only


def test_current_sees_a_real_listener() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        keys = {(x.proto, x.address, x.port) for x in listeners.current()}
        assert ("tcp", "127.0.0.1", port) in keys
    keys = {(x.proto, x.port) for x in listeners.current()}
    assert ("tcp", port) not in keys
