"""What one service room needs of another, as small interfaces the composition root hands in.

Service rooms never import each other (import-linter: gateway-layers); ``composition.py`` (and
the verbs, for one-shot commands) bind these to the room that provides them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# The running firmware as the update room reports it (``update.status`` bound to a state
# directory and board): version, source, slot, update state, install history. Used by the
# admin API's status and by the resale reset's record of the firmware it kept.
FirmwareStatus = Callable[[], dict[str, Any]]


# The live commissioning self-test (the self-test room), run by the admin API for
# `mamori commission`: commission(level) -> {"envelope", "entry", "public_key"}; raises
# CommissioningRefused (a MamoriError carrying .report) when the report is not all-pass.
Commission = Callable[[int | None], dict[str, Any]]
