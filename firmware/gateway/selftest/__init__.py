"""On-device compliance self-test: registry of checks, runner on scratch copies, reports."""
