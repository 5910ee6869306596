"""Commissioning a house from the installer's PC: `mamori commission` (and the demo's installer)."""
