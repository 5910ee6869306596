"""One module per feature; each registers its checks with firmware.gateway.selftest.registry."""
