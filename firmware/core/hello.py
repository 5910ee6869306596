"""The device ``hello``: the first message of every device session, checked per field (portable).

A hello comes from a peer that has not been admitted yet, so every field has an exact type and
range: the id follows the provisioning id syntax, the heartbeat interval is a finite number of
seconds in [MIN_INTERVAL, MAX_INTERVAL] (NaN, infinity, negative and absurd values are refused),
the firmware version is short printable ASCII, and unknown fields are refused by name.
"""

from firmware.core import schema
from firmware.core.ids import ID_FIELD

MIN_INTERVAL = 0.1
MAX_INTERVAL = 86400.0
DEFAULT_INTERVAL = 10.0
TRANSPORTS = ("ip", "ble", "zigbee")


HELLO = schema.Obj({
    "type": schema.Const("hello"),
    "id": ID_FIELD,
    "transport": schema.Opt(schema.Str(choices=TRANSPORTS)),
    "kind": schema.Opt(schema.Token(1, 32)),
    "maker": schema.Opt(schema.Str(64, 0)),
    "model": schema.Opt(schema.Str(64, 0)),
    "fw": schema.Opt(schema.Text(32)),
    "interval": schema.Opt(schema.Num(MIN_INTERVAL, MAX_INTERVAL)),
    # the one-time installation ticket (a signed document, checked by the binding policy)
    "ticket": schema.Opt(schema.Map(schema.Str(32), schema.Any_(), 8)),
    "secret": schema.Opt(schema.Str(128)),
    # signature algorithms the device checks ★★★ commands with itself (none: ★★★ refused)
    "verifies": schema.Opt(schema.List(schema.Token(1, 32), 8)),
})


def parse_hello(msg: object) -> dict:
    """The checked hello (with ``interval`` always set), or schema.FieldError naming the field."""
    hello = schema.check(msg, HELLO, "hello")
    if "interval" not in hello:  # type: ignore[operator]
        hello["interval"] = DEFAULT_INTERVAL  # type: ignore[index]
    return hello  # type: ignore[return-value]
