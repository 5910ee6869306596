"""The smart-home guideline's risk scoring (CVSS v3.0 with LP/II multipliers) and risk register."""
