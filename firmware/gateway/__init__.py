"""CPython services that run on Raspberry Pi-class gateways (asyncio)."""
