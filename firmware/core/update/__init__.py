"""Portable OTA update logic: versions, floors, chunk bookkeeping and the install state machine."""
