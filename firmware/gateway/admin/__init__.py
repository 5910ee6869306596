"""The hardened local admin interface: an HTTPS JSON API on the LAN (SR3-H-3, R3-7, R2-6, C6)."""
