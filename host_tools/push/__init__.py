"""Staged rollout of releases to gateways (waves that stop on failures)."""
