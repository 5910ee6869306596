"""Zigbee: install-code-only joining through zigpy, rogue joins reported."""
