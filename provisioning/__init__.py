"""Keys, certificates, installation bundles, device inventory and revocation."""
