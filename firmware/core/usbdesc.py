"""Parse the raw USB descriptors the kernel exposes in sysfs `descriptors` (portable).

With ``authorized_default=0`` a new device's interfaces are not instantiated until it is
authorised, so the interface classes a decision needs come from the descriptors themselves
(as USBGuard does). Only lengths and types are trusted; every read is bounds-checked.
"""

from firmware.core.errors import ProtocolError

DT_DEVICE = 1
DT_CONFIG = 2
DT_INTERFACE = 4
MAX_DESCRIPTORS = 65536


def _hex2(b: int) -> str:
    return "0123456789abcdef"[b >> 4] + "0123456789abcdef"[b & 15]


def parse_descriptors(raw: bytes) -> dict:
    """Device class and, per configuration value, the interfaces {number: [CC:SS:PP, ...]}.

    Alternate settings are kept: a device must not hide a class in an alternate setting.
    """
    if len(raw) > MAX_DESCRIPTORS:
        raise ProtocolError("descriptors larger than %d bytes" % MAX_DESCRIPTORS)
    if len(raw) < 18 or raw[0] != 18 or raw[1] != DT_DEVICE:
        raise ProtocolError("descriptors do not start with an 18-byte device descriptor")
    configs: dict = {}
    out = {"device_class": _hex2(raw[4]), "configs": configs}
    pos = 18
    config: "dict | None" = None
    while pos < len(raw):
        length = raw[pos]
        if length < 2 or pos + length > len(raw):
            raise ProtocolError("truncated or zero-length descriptor at byte %d" % pos)
        dtype = raw[pos + 1]
        if dtype == DT_CONFIG:
            if length < 9:
                raise ProtocolError("short configuration descriptor at byte %d" % pos)
            config = {}
            configs[raw[pos + 5]] = config
        elif dtype == DT_INTERFACE:
            if length < 9 or config is None:
                raise ProtocolError("interface descriptor outside a configuration at byte %d"
                                    % pos)
            num = raw[pos + 2]
            t = _hex2(raw[pos + 5]) + ":" + _hex2(raw[pos + 6]) + ":" + _hex2(raw[pos + 7])
            types = config.setdefault(num, [])
            if t not in types:
                types.append(t)
        pos += length
    return out


def interfaces_from_descriptors(name: str, raw: bytes, config_value: int = 1) -> list:
    """Interface entries [{name, type, types}] of one configuration, named like sysfs."""
    parsed = parse_descriptors(raw)
    configs = parsed["configs"]
    if config_value not in configs:
        if not configs:
            return []
        config_value = sorted(configs)[0]
    ifaces = []
    for num in sorted(configs[config_value]):
        types = configs[config_value][num]
        ifaces.append({"name": name + ":" + str(config_value) + "." + str(num),
                       "type": types[0], "types": types})
    return ifaces


def build_descriptors(vid: int, pid: int, device_class: int, interfaces: list) -> bytes:
    """Raw descriptors for one configuration; interfaces are (class, subclass, protocol) tuples
    or lists of them (alternate settings). Used by test fixtures and the simulated board."""
    dev = bytes([18, DT_DEVICE, 0x00, 0x02, device_class, 0, 0, 64,
                 vid & 255, vid >> 8, pid & 255, pid >> 8, 0, 1, 1, 2, 3, 1])
    body = b""
    for num, spec in enumerate(interfaces):
        alts = spec if isinstance(spec, list) else [spec]
        for alt, (c, s, p) in enumerate(alts):
            body += bytes([9, DT_INTERFACE, num, alt, 0, c, s, p, 0])
    total = 9 + len(body)
    cfg = bytes([9, DT_CONFIG, total & 255, total >> 8, len(interfaces), 1, 0, 0x80, 50])
    return dev + cfg + body
