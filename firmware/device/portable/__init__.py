"""Portable (MicroPython-compatible) part of the device agent."""
