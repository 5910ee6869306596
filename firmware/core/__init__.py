"""Portable, sans-I/O core: runs on CPython and MicroPython; imports nothing CPython-only."""
