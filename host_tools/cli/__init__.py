"""`mamori` verbs: verb -> (module here with register(subparsers), one-line help)."""

VERBS = {
    "boards": ("boards", "list and show board profiles"),
    "commission": ("commission", "commission a house: site, bundle, device credentials, "
                                 "install, first-use credential change, live self-test and "
                                 "signed record, resumable (exit 0 only when all pass)"),
    "commissioning": ("commissioning", "verify commissioning self-test reports"),
    "demo": ("demo", "the demo: a provisioned sim house and its gateway (what `make run` runs)"),
    "flash": ("flash", "flash gateway boards (MicroPython deploy, Linux images)"),
    "logs": ("logs", "verify, show and export access logs"),
    "platform": ("platform", "service-platform side of the WAN channel (demo/test)"),
    "provision": ("provision", "site PKI, gateway bundles, device credentials"),
    "push": ("push", "tell gateways about a release in staged waves"),
    "release": ("release", "build, sign and publish firmware releases (TUF)"),
    "risk": ("risk", "score threats with the guideline's CVSS-based method"),
    "scan": ("scan", "release scan: nmap, sslscan, admin API probes and SBOM vs OSV advisories "
                     "against a staging sim gateway (needs root; exit 0 pass, 2 findings, "
                     "1 could not run)"),
    "trace": ("trace", "requirement traceability matrix (code, tests, checks)"),
}
