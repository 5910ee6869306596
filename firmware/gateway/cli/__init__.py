"""`mamori-gateway` verbs: verb -> (module here with register(subparsers), one-line help)."""

VERBS = {
    "admin": ("admin", "local admin interface: credentials and posture"),
    "commission": ("commission", "commissioning self-test: signed report stored with the "
                                 "installation record (exit 0 pass, 2 fail, 1 could not run)"),
    "enrol": ("enrol", "generate this gateway's keys (wrapped in its key store) and write the "
                       "public enrolment request for `mamori provision gateway --request`"),
    "firewall": ("firewall", "render, apply and check the nftables firewall"),
    "reset": ("reset", "resale reset: erase settings, data, logs, credentials and keys; keep "
                       "the installed firmware"),
    "run": ("run", "run the gateway"),
    "selftest": ("selftest", "run the compliance self-test (exit 0 pass, 2 fail, 1 could not "
                             "run)"),
    "status": ("status", "show the gateway's state, devices and recent events"),
    "tuf-client": ("tuf_client", "TUF client-under-test CLI (tuf-conformance protocol)"),
    "update": ("update", "install one signed update now (online or offline)"),
    "usb": ("usb", "USB-port lockdown: evaluate, learn, commit, maintenance"),
    "zigbee": ("zigbee", "Zigbee: install-code join windows"),
}
