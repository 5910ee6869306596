"""Release scan: nmap, sslscan, admin API probes and an SBOM/OSV check against a staging gateway."""
