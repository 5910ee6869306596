"""The gateway's declared network ports: the single source for servers and the firewall."""

from __future__ import annotations

# TLS port LAN devices connect to (the gateway's LAN server binds it; the firewall opens it).
LAN_DEVICE_PORT = 8883
# HTTPS port of the local admin interface (LAN only).
ADMIN_HTTPS_PORT = 8443
