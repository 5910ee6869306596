"""Host-side reading of Mamori access logs: locate, verify, decrypt, filter."""
