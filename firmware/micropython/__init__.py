"""The MicroPython port: production config, adapters and a minimal gateway loop on the core."""
