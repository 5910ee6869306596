"""`mamori-gateway` verbs: each module here adds one with register(subparsers)."""

VERBS = {
    "admin": "admin",
    "commission": "commission",
    "crl": "crl",
    "enrol": "enrol",
    "firewall": "firewall",
    "reset": "reset",
    "run": "run",
    "selftest": "selftest",
    "status": "status",
    "tuf-client": "tuf_client",
    "update": "update",
    "usb": "usb",
    "zigbee": "zigbee",
}
