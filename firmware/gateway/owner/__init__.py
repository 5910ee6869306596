"""The household leaving: resale reset (R2-9) and the registry of every store that can hold its
data (the personal data and ownership transfer are admin resources: ``admin/personal.py``,
``admin/transfer.py``)."""
