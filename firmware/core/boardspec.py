"""Board-profile schema and validation (portable: works on a dict parsed from TOML).

Every error names the file and the field, e.g. ``boards/rpi4.toml: field 'cpu.ram_mb': ...``.
"""

from firmware.core.errors import ConfigError
from firmware.core.schema import nearest

RUNTIMES = ("cpython", "micropython")
ROLES = ("wan", "lan")
SECURE_ELEMENTS = ("none", "tpm2", "atecc608", "se050")
WIFI_MODES = ("wpa3-sae", "wpa2-wpa3", "wpa2-psk", "none")
BOOT_METHODS = ("tryboot", "slot-dir", "ota-partition", "none")
# BLE host stacks: BlueZ over D-Bus (bleak), bumble on a controller over HCI, the sim board's
# in-process air, MicroPython's own ``bluetooth`` module.
BLE_BACKENDS = ("bluez", "hci", "sim", "micropython")
BLE_BACKEND_RUNTIME = {"bluez": "cpython", "hci": "cpython", "sim": "cpython",
                       "micropython": "micropython"}
# HCI transports bumble opens by name (``serial:/dev/ttyAMA0,1000000``, ``usb:0`` ...)
HCI_TRANSPORTS = ("serial", "usb", "pyusb", "hci-socket", "vhci", "tcp-client", "tcp-server",
                  "udp", "unix", "file", "pty")
# Zigbee coordinator families by radio library: TI Z-Stack (zigpy-znp), Silicon Labs EZSP
# (bellows), dresden elektronik deCONZ (zigpy-deconz); "sim" is the sim board's coordinator.
ZIGBEE_RADIO_TYPES = ("znp", "ezsp", "deconz", "sim")

# field path -> (type, required). Nested tables use dotted paths.
_STR = "str"
_INT = "int"
_BOOL = "bool"
_LIST_STR = "list[str]"

TOP_FIELDS = (
    ("name", _STR, True),
    ("description", _STR, True),
    ("runtime", _STR, True),
    ("cpu.class", _STR, True),
    ("cpu.arch", _STR, True),
    ("cpu.cores", _INT, True),
    ("memory.ram_kib", _INT, True),
    ("storage.state_dir", _STR, True),
    ("storage.slots", _LIST_STR, True),
    ("storage.boot", _STR, True),
    ("console.serial", _STR, True),
    ("console.login_in_production", _BOOL, True),
    ("security.secure_element", _STR, True),
    ("security.crypto_accel", _LIST_STR, True),
    ("security.rtc", _BOOL, True),
    ("security.usb_repl_in_production", _BOOL, False),
    ("wifi.security", _STR, False),
)

# Top-level keys besides the tables of TOP_FIELDS (arrays of tables; `source` is added on load).
EXTRA_TOP_KEYS = ("network", "usb_ports", "source", "radios", "base_os_requires")
MAX_INT = 2 ** 63 - 1

IFACE_FIELDS = (("name", _STR, True), ("role", _STR, True), ("kind", _STR, True))
USB_FIELDS = (("path", _STR, True), ("needed", _BOOL, True), ("purpose", _STR, False),
              ("allow", _STR, False))
ZIGBEE_FIELDS = (("radio_type", _STR, True), ("serial_port", _STR, True),
                 ("baudrate", _INT, False), ("dongle", _STR, False),
                 ("usb_port", _STR, False), ("usb_id", _STR, False))
# What the vendor's base OS must provide; Mamori's application slot brings everything else.
BASE_OS_FIELDS = (("distribution", _STR, True), ("python", _STR, True), ("glibc", _STR, True),
                  ("packages", _LIST_STR, True), ("commands", _LIST_STR, True))
BASE_OS_KEYS = tuple(f[0] for f in BASE_OS_FIELDS)
BLE_FIELDS = (("backend", _STR, True), ("hci_transport", _STR, False),
              ("controller", _STR, False))


class _NotTable(Exception):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def _lookup(data: dict, path: str) -> "tuple[bool, object]":
    cur = data
    done = ""
    for part in path.split("."):
        if not isinstance(cur, dict):
            raise _NotTable(done)  # e.g. `wifi = "x"` where [wifi] must be a table
        if part not in cur:
            return False, None
        cur = cur[part]
        done = (done + "." + part) if done else part
    return True, cur


def _type_ok(value: object, kind: str) -> bool:
    if kind == _STR:
        return isinstance(value, str) and value != ""
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INT
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _LIST_STR:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return False


def _check_fields(data: dict, fields: tuple, source: str, prefix: str) -> None:
    for path, kind, required in fields:
        full = prefix + path
        try:
            present, value = _lookup(data, path)
        except _NotTable as exc:
            raise ConfigError("must be a table", source, prefix + exc.path)
        if not present:
            if required:
                raise ConfigError("is missing (expected " + kind + ")", source, full)
            continue
        if not _type_ok(value, kind):
            raise ConfigError("must be " + kind + ", got " + repr(value), source, full)


def _check_choice(value: object, choices: tuple, source: str, field: str) -> None:
    if value not in choices:
        raise ConfigError(
            "must be one of " + ", ".join(choices) + ", got " + repr(value), source, field
        )


def validate(data: dict, source: str = "<board>") -> dict:
    """Validate a parsed board profile; return it unchanged or raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError("a board profile must be a table", source)
    _check_fields(data, TOP_FIELDS, source, "")
    _check_choice(data["runtime"], RUNTIMES, source, "runtime")
    _check_choice(data["storage"]["boot"], BOOT_METHODS, source, "storage.boot")
    _check_choice(data["security"]["secure_element"], SECURE_ELEMENTS, source,
                  "security.secure_element")
    if "wifi" in data:
        if "security" not in data["wifi"]:
            raise ConfigError("is missing (expected str)", source, "wifi.security")
        _check_choice(data["wifi"]["security"], WIFI_MODES, source, "wifi.security")
    if len(data["storage"]["slots"]) not in (0, 2):
        raise ConfigError("must list exactly two A/B slots (or none)", source, "storage.slots")

    ifaces = data.get("network")
    if not isinstance(ifaces, list) or not ifaces:
        raise ConfigError("must list at least one [[network]] interface", source, "network")
    roles = []
    for i, iface in enumerate(ifaces):
        prefix = "network[" + str(i) + "]."
        if not isinstance(iface, dict):
            raise ConfigError("must be a table", source, prefix[:-1])
        _check_fields(iface, IFACE_FIELDS, source, prefix)
        _check_choice(iface["role"], ROLES, source, prefix + "role")
        roles.append(iface["role"])
    if "wan" not in roles:
        raise ConfigError("needs one interface with role 'wan'", source, "network")

    ports = data.get("usb_ports", [])
    if not isinstance(ports, list):
        raise ConfigError("must be a list of tables", source, "usb_ports")
    for i, port in enumerate(ports):
        prefix = "usb_ports[" + str(i) + "]."
        if not isinstance(port, dict):
            raise ConfigError("must be a table", source, prefix[:-1])
        _check_fields(port, USB_FIELDS, source, prefix)
        if port["needed"] and not port.get("allow"):
            raise ConfigError(
                "a needed port must name the device it allows (vendor:product)",
                source, prefix + "allow",
            )

    _check_base_os(data, source)
    _check_radios(data, source)
    check_known_keys(data, source)
    return data


def _check_unknown(table: dict, fields: tuple, source: str, prefix: str) -> None:
    _refuse_unknown(table, [f[0] for f in fields], source, prefix)


def _check_radios(data: dict, source: str) -> None:
    radios = data.get("radios")
    if not isinstance(radios, dict):
        raise ConfigError("is missing (expected a table)", source, "radios")
    for key in radios:
        if key not in ("ble", "zigbee"):
            raise ConfigError("unknown radio (known: ble, zigbee)", source, "radios." + key)
    if "ble" not in radios:
        raise ConfigError("is missing (false, or a table naming the backend)", source,
                          "radios.ble")
    ble = radios["ble"]
    if ble is not False:
        if not isinstance(ble, dict):
            raise ConfigError("must be false or a table naming its backend "
                              "([radios.ble] backend = \"bluez\" | \"hci\")", source,
                              "radios.ble")
        _check_fields(ble, BLE_FIELDS, source, "radios.ble.")
        _check_unknown(ble, BLE_FIELDS, source, "radios.ble.")
        backend = ble["backend"]
        _check_choice(backend, BLE_BACKENDS, source, "radios.ble.backend")
        if BLE_BACKEND_RUNTIME[backend] != data["runtime"]:
            raise ConfigError("backend " + backend + " needs the " + BLE_BACKEND_RUNTIME[backend]
                              + " runtime, the board runs " + data["runtime"], source,
                              "radios.ble.backend")
        if backend == "hci":
            if "hci_transport" not in ble:
                raise ConfigError("is missing (the hci backend needs the controller's "
                                  "transport, e.g. serial:/dev/ttyAMA0,1000000)", source,
                                  "radios.ble.hci_transport")
            scheme = ble["hci_transport"].split(":", 1)[0]
            if ":" not in ble["hci_transport"] or scheme not in HCI_TRANSPORTS:
                raise ConfigError("unknown HCI transport " + repr(ble["hci_transport"])
                                  + " (known: " + ", ".join(HCI_TRANSPORTS) + ")", source,
                                  "radios.ble.hci_transport")
        elif "hci_transport" in ble:
            raise ConfigError("only the hci backend takes an HCI transport", source,
                              "radios.ble.hci_transport")
    zigbee = radios.get("zigbee")
    if zigbee is not None:
        if not isinstance(zigbee, dict):
            raise ConfigError("must be a table", source, "radios.zigbee")
        _check_fields(zigbee, ZIGBEE_FIELDS, source, "radios.zigbee.")
        _check_unknown(zigbee, ZIGBEE_FIELDS, source, "radios.zigbee.")
        _check_choice(zigbee["radio_type"], ZIGBEE_RADIO_TYPES, source,
                      "radios.zigbee.radio_type")
        if (zigbee["radio_type"] == "sim") != zigbee["serial_port"].startswith("sim://"):
            raise ConfigError("the sim radio type goes with a sim:// port and only with it",
                              source, "radios.zigbee.serial_port")
        if "baudrate" in zigbee and zigbee["baudrate"] not in BAUDRATES:
            raise ConfigError("unsupported baud rate " + str(zigbee["baudrate"]), source,
                              "radios.zigbee.baudrate")


BAUDRATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)


def ble_backend(profile: dict) -> str:
    """The board's BLE backend, or "" when it has no BLE."""
    ble = profile.get("radios", {}).get("ble")
    return ble["backend"] if isinstance(ble, dict) else ""


def _dotted(value: str, parts: int) -> bool:
    pieces = value.split(".")
    return len(pieces) == parts and all(p.isdigit() and len(p) <= 3 for p in pieces)


def _check_base_os(data: dict, source: str) -> None:
    """[base_os_requires]: required on a Linux board with A/B slots, strict when present."""
    base = data.get("base_os_requires")
    if base is None:
        if data["runtime"] == "cpython" and data["storage"]["boot"] == "tryboot":
            raise ConfigError("is missing: a Linux board image says what its base OS provides "
                              "(python, glibc, packages, commands)", source, "base_os_requires")
        return
    if not isinstance(base, dict):
        raise ConfigError("must be a table", source, "base_os_requires")
    if data["runtime"] != "cpython":
        raise ConfigError("only a cpython board runs on a base OS", source, "base_os_requires")
    _refuse_unknown(base, list(BASE_OS_KEYS), source, "base_os_requires.")
    _check_fields(base, BASE_OS_FIELDS, source, "base_os_requires.")
    if not _dotted(base["python"], 2) or not base["python"].startswith("3."):
        raise ConfigError("must be a Python 3 version such as \"3.11\"", source,
                          "base_os_requires.python")
    if not _dotted(base["glibc"], 2):
        raise ConfigError("must be a glibc version such as \"2.36\"", source,
                          "base_os_requires.glibc")
    for cmd in base["commands"]:
        if not cmd.startswith("/"):
            raise ConfigError("must list absolute paths, got " + repr(cmd), source,
                              "base_os_requires.commands")
    if not base["packages"]:
        raise ConfigError("must list at least the Python interpreter's package", source,
                          "base_os_requires.packages")


def _refuse_unknown(table: dict, known: list, source: str, prefix: str) -> None:
    for key in table:
        if key not in known:
            near = nearest(str(key), known)
            raise ConfigError("unknown field", source, prefix + str(key)[:64],
                              hint=("did you mean '" + prefix + near + "'?") if near else
                              "known here: " + ", ".join(sorted(known)))


def check_known_keys(data: dict, source: str) -> None:
    """Refuse every key the profile schema does not know, naming the nearest valid one."""
    tables: dict = {}
    for path, _kind, _req in TOP_FIELDS:
        head, _, rest = path.partition(".")
        tables.setdefault(head, [])
        if rest:
            tables[head].append(rest.split(".")[0])
    _refuse_unknown(data, list(tables) + list(EXTRA_TOP_KEYS), source, "")
    for head in tables:
        if tables[head] and isinstance(data.get(head), dict):
            _refuse_unknown(data[head], tables[head], source, head + ".")
    listed = (("network", IFACE_FIELDS), ("usb_ports", USB_FIELDS))
    for name, fields in listed:
        for i, item in enumerate(data.get(name) or []):
            if isinstance(item, dict):
                _refuse_unknown(item, [f[0] for f in fields], source,
                                "%s[%d]." % (name, i))


def needed_usb_ports(profile: dict) -> list:
    """The USB ports the service needs, with the device each allows."""
    return [p for p in profile.get("usb_ports", []) if p["needed"]]


def interfaces_by_role(profile: dict, role: str) -> list:
    """Names of the network interfaces with the given role (wan or lan)."""
    return [i["name"] for i in profile["network"] if i["role"] == role]
