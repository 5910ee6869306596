"""Mamori firmware: what runs on the gateway (portable core, CPython services, device agent)."""
