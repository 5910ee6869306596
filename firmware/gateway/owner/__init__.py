"""Ownership of the gateway: personal data store, ownership transfer, resale reset (R2-4/5/9)."""
