"""LAN-only binding: the admin interface refuses wildcard and WAN-side addresses (SR3-H-3)."""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from pathlib import Path

from firmware.common.boardprofile import Board
from firmware.core.errors import ConfigError, PolicyError

_SIOCGIFADDR = 0x8915


def interface_addresses(name: str) -> set[str]:
    """IPv4 and IPv6 addresses of one network interface (empty when it has none)."""
    out: set[str] = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            res = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", name[:15].encode()))
            out.add(socket.inet_ntoa(res[20:24]))
        except OSError:
            pass
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            f = line.split()
            if len(f) >= 6 and f[5] == name:
                out.add(str(ipaddress.IPv6Address(bytes.fromhex(f[0]))))
    except OSError:
        pass
    return out


def check_bind(host: str, board: Board) -> str:
    """The address to bind if it is on a LAN-role interface and on no WAN-only one."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError("admin_host must be an IP address, not %r" % host[:64])
    if ip.is_unspecified:
        raise PolicyError("the admin interface must not bind every address (%s)" % ip,
                          "set admin_host to the gateway's LAN address")
    lan_ifaces = set(board.interfaces("lan"))
    wan_only = set(board.interfaces("wan")) - lan_ifaces
    for name in sorted(wan_only):
        if str(ip) in interface_addresses(name):
            raise PolicyError("%s is an address of WAN interface %s" % (ip, name),
                              "the admin interface is LAN-only")
    lan_addrs: set[str] = set()
    for name in sorted(lan_ifaces):
        lan_addrs |= interface_addresses(name)
    if str(ip) not in lan_addrs:
        raise PolicyError("%s is not an address of a LAN interface (%s)"
                          % (ip, ", ".join(sorted(lan_ifaces)) or "none declared"),
                          "set admin_host to the gateway's LAN address")
    return str(ip)


def listen_address(value: str, board: Board) -> str:
    """VALUE as a listen address: an IP as given, or the IPv4 (else IPv6) address of a board
    LAN interface named by VALUE (the flashed unit names ``wlan0``, not a site's address)."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    lan = board.interfaces("lan")
    if value not in lan:
        raise ConfigError("--lan-host %r is neither an IP address nor a LAN interface of board "
                          "%s (%s)" % (value[:64], board.name, ", ".join(lan) or "none"))
    addrs = sorted(interface_addresses(value), key=lambda a: (":" in a, a))
    if not addrs:
        raise ConfigError("LAN interface %s has no address yet" % value,
                          "configure the board's LAN network (the unit starts after "
                          "network-online.target)")
    return addrs[0]
