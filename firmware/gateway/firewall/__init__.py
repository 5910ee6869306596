"""Firewall posture: nftables ruleset from the board profile, applied atomically and verified."""
