"""The gateway's systemd unit and udev rule as a board image carries them.

``Type=notify`` with a watchdog: the gateway sends READY=1 once its services are up and
WATCHDOG=1 only while its supervised tasks are healthy, so systemd restarts a wedged gateway.
The sandbox keeps what the board needs and nothing more: CAP_NET_ADMIN (nftables over netlink),
CAP_NET_RAW and AF_BLUETOOTH when the board has BLE (BlueZ over D-Bus: a policy file admits
the gateway's user, not a whole group), the Zigbee dongle's serial device (a udev rule hands that
one device, by vendor:product, to the gateway's group; ``DeviceAllow`` admits it) and writes to
the USB ``authorized``/``remove`` attributes, which the udev rule hands to the gateway's group
too (``ProtectKernelTunables`` keeps the rest of /sys read-only; the rule, not a capability,
decides which attributes the gateway may write). No supplementary groups.
"""

from __future__ import annotations

from firmware.common.boardprofile import Board
from firmware.common.ports import LAN_DEVICE_PORT
from host_tools.flash.errors import TargetError

UNIT_NAME = "mamori-gateway.service"
UDEV_RULE = "etc/udev/rules.d/70-mamori.rules"
DBUS_POLICY = "etc/dbus-1/system.d/mamori-bluez.conf"
USER = "mamori"
APP_DIR = "/opt/mamori"
WATCHDOG_SEC = 30
USB_ATTRS = ("authorized", "authorized_default", "interface_authorized_default", "remove")

UNIT = """\
[Unit]
Description=Mamori secure home gateway
After=network-online.target bluetooth.service
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
WatchdogSec={watchdog}
TimeoutStartSec=180
User={user}
Group={user}
Environment=PYTHONPATH={app}:{app}/site-packages PYTHONDONTWRITEBYTECODE=1
ExecStart=/usr/bin/python3 -m firmware.gateway.cli.main run --board {board} --state-dir {state} \
--bundle {state}/{bundle} --lan-host {lan} --lan-port {port}
Restart=on-failure
RestartSec=5
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
ReadWritePaths={state}
ReadWritePaths=/sys/devices
StateDirectory=mamori
StateDirectoryMode=0700
PrivateTmp=yes
PrivateMounts=yes
PrivateDevices=no
DevicePolicy=closed
{device_allow}
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
RemoveIPC=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
RestrictAddressFamilies={families}
CapabilityBoundingSet={caps}
AmbientCapabilities={caps}
UMask=0077

[Install]
WantedBy=multi-user.target
"""

# USB authorisation is a sysfs write: the gateway's group may write `authorized` and `remove`
# of USB devices and interfaces (and `authorized_default` of root hubs), nothing else.
UDEV = ("# Mamori: the gateway (group {user}) authorises USB devices and interfaces via sysfs.\n"
        'ACTION=="add", SUBSYSTEM=="usb", RUN+="/bin/sh -c \'cd /sys%p && for a in {attrs}; '
        "do [ -e $$a ] && chgrp {user} $$a && chmod g+w $$a; done; true'\"\n")


DBUS = """\
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<!-- Mamori: the gateway's user talks to BlueZ (BLE), nothing else on the system bus. -->
<busconfig>
  <policy user="{user}">
    <allow send_destination="org.bluez"/>
  </policy>
</busconfig>
"""


def capabilities(board: Board) -> str:
    """Only what the services need: the firewall (nftables) and raw BLE sockets."""
    caps = ["CAP_NET_ADMIN"]
    if board.radios.ble:
        caps.append("CAP_NET_RAW")
    return " ".join(caps)


def device_allow(board: Board) -> str:
    """The unit's device allowlist: the Zigbee coordinator's and the HCI controller's ports."""
    ports = []
    zig = board.radios.zigbee
    if zig:
        ports.append(zig.serial_port)
    ble = board.radios.ble
    if ble and ble.backend == "hci" and ble.hci_transport and \
            ble.hci_transport.startswith("serial:"):
        ports.append(ble.hci_transport[len("serial:"):].split(",")[0])
    return "\n".join("DeviceAllow=%s rw" % p for p in ports or ["/dev/null"])


def render(board: Board, bundle: str) -> str:
    """The unit for BOARD, starting the gateway with the installation bundle BUNDLE."""
    lan = board.interfaces("lan")
    if not lan:
        raise TargetError("board %s declares no LAN interface for devices to reach"
                          % board.name, "add a [[network]] with role = \"lan\"")
    families = ["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"]
    if board.radios.ble:
        families.append("AF_BLUETOOTH")
    return UNIT.format(board=board.name, state=board.storage.state_dir, bundle=bundle,
                       caps=capabilities(board), device_allow=device_allow(board),
                       families=" ".join(families), user=USER, app=APP_DIR,
                       watchdog=WATCHDOG_SEC, lan=lan[0],
                       port=LAN_DEVICE_PORT)


def udev_rule(board: Board) -> str:
    """The udev rules handing the USB authorisation attributes and the radio dongle (only that
    one) to the gateway's group."""
    text = UDEV.format(user=USER, attrs=" ".join(USB_ATTRS))
    zig = board.radios.zigbee
    if zig:
        if zig.usb_id:
            vendor, product = zig.usb_id.split(":")
            match = 'ENV{ID_VENDOR_ID}=="%s", ENV{ID_MODEL_ID}=="%s"' % (vendor, product)
        else:
            match = 'KERNEL=="%s"' % zig.serial_port.rsplit("/", 1)[-1]
        text += ('# The %s radio dongle, and no other serial device.\n'
                 'SUBSYSTEM=="tty", %s, GROUP="%s", MODE="0660"\n'
                 % (zig.dongle or zig.radio_type, match, USER))
    return text


def dbus_policy(board: Board) -> str | None:
    """BlueZ D-Bus access for the gateway's user on a BLE board (None: the board has no BLE)."""
    if not board.radios.ble:
        return None
    return DBUS.format(user=USER)


def parse(text: str) -> dict[str, list[str]]:
    """A unit file's [Service] settings (each key's values in order; continuations joined)."""
    out: dict[str, list[str]] = {}
    section = ""
    joined = text.replace("\\\n", "")
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        if section == "Service" and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out
