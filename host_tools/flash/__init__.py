"""Flashing gateway boards: MicroPython deploys over the raw REPL and Linux images."""
