"""Monitoring services: liveness and radio watchdog alerts, rogue devices, commanded vs actual."""
