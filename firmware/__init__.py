"""Mamori firmware: what runs on the gateway board (portable core, CPython services, device agent)."""
