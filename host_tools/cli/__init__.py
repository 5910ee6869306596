"""`mamori` verbs: each module here adds one with register(subparsers)."""

VERBS = {
    "boards": "boards",
    "commissioning": "commissioning",
    "demo": "demo",
    "flash": "flash",
    "logs": "logs",
    "platform": "platform",
    "provision": "provision",
    "push": "push",
    "release": "release",
    "risk": "risk",
    "scan": "scan",
    "trace": "trace",
}
