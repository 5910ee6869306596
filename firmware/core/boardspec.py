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

# Top-level keys besides the tables of TOP_FIELDS (arrays of tables; `source` is added on load).
EXTRA_TOP_KEYS = ("network", "usb_ports", "source")
MAX_INT = 2 ** 63 - 1

IFACE_FIELDS = (("name", _STR, True), ("role", _STR, True), ("kind", _STR, True))
USB_FIELDS = (("path", _STR, True), ("needed", _BOOL, True), ("purpose", _STR, False),
              ("allow", _STR, False))
ZIGBEE_FIELDS = (("dongle", _STR, True), ("serial_port", _STR, True),
                 ("usb_port", _STR, False), ("usb_id", _STR, False))


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

    zigbee = data["radios"].get("zigbee")
    if zigbee is not None:
        if not isinstance(zigbee, dict):
            raise ConfigError("must be a table", source, "radios.zigbee")
        _check_fields(zigbee, ZIGBEE_FIELDS, source, "radios.zigbee.")
    check_known_keys(data, source)
    return data


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
    tables["radios"].append("zigbee")
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
    zigbee = data["radios"].get("zigbee")
    if isinstance(zigbee, dict):
        _refuse_unknown(zigbee, [f[0] for f in ZIGBEE_FIELDS], source, "radios.zigbee.")


def needed_usb_ports(profile: dict) -> list:
    """The USB ports the service needs, with the device each allows."""
    return [p for p in profile.get("usb_ports", []) if p["needed"]]


def interfaces_by_role(profile: dict, role: str) -> list:
    """Names of the network interfaces with the given role (wan or lan)."""
    return [i["name"] for i in profile["network"] if i["role"] == role]
