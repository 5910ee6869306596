"""WAN channel to the service platform: MQTT 5 over mutual TLS, store-and-forward (CPython)."""
