"""Board-profile schema and validation (portable: works on a dict parsed from TOML).

Every error names the file and the field, e.g. ``boards/rpi4.toml: field 'cpu.ram_mb': ...``.
"""

from firmware.core.errors import ConfigError

RUNTIMES = ("cpython", "micropython")
ROLES = ("wan", "lan")
SECURE_ELEMENTS = ("none", "tpm2", "atecc608", "se050")
WIFI_MODES = ("wpa3-sae", "wpa2-wpa3", "wpa2-psk", "none")
BOOT_METHODS = ("tryboot", "slot-dir", "ota-partition", "none")

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
    ("radios.ble", _BOOL, True),
    ("console.serial", _STR, True),
    ("console.login_in_production", _BOOL, True),
    ("security.secure_element", _STR, True),
    ("security.crypto_accel", _LIST_STR, True),
    ("security.rtc", _BOOL, True),
    ("security.usb_repl_in_production", _BOOL, False),
    ("wifi.security", _STR, False),
)

IFACE_FIELDS = (("name", _STR, True), ("role", _STR, True), ("kind", _STR, True))
USB_FIELDS = (("path", _STR, True), ("needed", _BOOL, True), ("purpose", _STR, False),
              ("allow", _STR, False))
ZIGBEE_FIELDS = (("dongle", _STR, True), ("serial_port", _STR, True),
                 ("usb_port", _STR, False), ("usb_id", _STR, False))
# What the vendor's base OS must provide; Mamori's application slot brings everything else.
BASE_OS_FIELDS = (("distribution", _STR, True), ("python", _STR, True), ("glibc", _STR, True),
                  ("packages", _LIST_STR, True), ("commands", _LIST_STR, True))
BASE_OS_KEYS = tuple(f[0] for f in BASE_OS_FIELDS)


def _lookup(data: dict, path: str) -> "tuple[bool, object]":
    cur = data
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


def _type_ok(value: object, kind: str) -> bool:
    if kind == _STR:
        return isinstance(value, str) and value != ""
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _LIST_STR:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return False


def _check_fields(data: dict, fields: tuple, source: str, prefix: str) -> None:
    for path, kind, required in fields:
        present, value = _lookup(data, path)
        full = prefix + path
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

    zigbee = data["radios"].get("zigbee")
    if zigbee is not None:
        if not isinstance(zigbee, dict):
            raise ConfigError("must be a table", source, "radios.zigbee")
        _check_fields(zigbee, ZIGBEE_FIELDS, source, "radios.zigbee.")
    _check_base_os(data, source)
    return data


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
    for key in base:
        if key not in BASE_OS_KEYS:
            raise ConfigError("unknown key (known: " + ", ".join(BASE_OS_KEYS) + ")", source,
                              "base_os_requires." + key)
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


def needed_usb_ports(profile: dict) -> list:
    """The USB ports the service needs, with the device each allows."""
    return [p for p in profile.get("usb_ports", []) if p["needed"]]


def interfaces_by_role(profile: dict, role: str) -> list:
    """Names of the network interfaces with the given role (wan or lan)."""
    return [i["name"] for i in profile["network"] if i["role"] == role]
