"""The access log's portable core: record encoding, framing, hash chain, seals, verification.

Storage, AEAD and signatures are done by the caller (CPython store, host tools) and passed in
as callables, so the same chain and seal logic runs on MicroPython.
"""
