"""★★★ commands checked by the device itself: the gateway forwards, it cannot originate (portable).

Design (the MicroPython agent follows it):

- For an action in the device's ★★★ set (``firmware.core.threestar.actions_for`` of its
  credentials' ``three_star`` list: at least ``unlock`` and ``disarm``), the gateway's ``cmd``
  frame carries ``env``: the platform's command envelope exactly as the platform signed it
  (``firmware.core.command_auth``). The device re-checks it with the same code the gateway uses
  (``CommandAuthorizer``): version and shape, *its own* device id, the gateway it is pinned to,
  the platform's Ed25519 signature over ``signing_payload(env)``, expiry against its own clock
  (at most ``max_ttl`` ahead), and replay (a nonce cache kept until each command expires). The
  action in the envelope must be the action in the frame, and the *signed* parameters are the
  ones executed. Any failure: the action is not performed and the ``result`` frame says
  ``ok: false`` with ``refused`` = the stable reason code.
- The platform key is the site's raw 32-byte Ed25519 command key, in the device's credentials
  (``platform_command_key``, base64). ``verify(payload, signature) -> bool`` is passed in: on
  CPython ``firmware.common.sigverify.ed25519_verifier``. A port without an Ed25519 primitive
  (or without a trustworthy wall clock: ``wall_clock`` returning Unix seconds, synced by NTP;
  2000-epoch ports add 946684800) passes ``verify=None`` or ``wall_clock=None``: the guard then
  refuses every ★★★ action (fail closed) and the device declares no algorithm in its ``hello``
  (``verifies: []``), so the gateway refuses those actions up front with ``cannot-verify``.
- Replay across a reboot: the cache lives in RAM. A port that reboots should persist it
  (``ReplayCache(on_record=…)`` / ``load``); without that, an envelope captured before a reboot
  stays replayable until it expires (at most ``max_ttl``, 300 s).
- Local operations at the device (buttons, keys: ``DeviceAgent.local``) never pass through here:
  they keep working without the platform.
"""

from firmware.core.errors import CommandRefused
from firmware.core.threestar import VERIFY_ALGS, actions_for

try:
    from typing import TYPE_CHECKING
except ImportError:  # MicroPython
    TYPE_CHECKING = False  # type: ignore[misc]
if TYPE_CHECKING:
    from firmware.core.command_auth import ReplayCache


class _OwnDevice:
    """The device's ACL: whatever the platform signed for it (the gateway applied its ACL)."""

    def check(self, principal: str, device: str, action: str) -> None:
        """Allow: authorisation is the platform's signature, checked before this."""



class ThreeStarGuard:
    """Checks the platform envelope of every ★★★ action before the device acts."""

    def __init__(self, device_id: str, gateway_id: str, three_star: "object" = None,
                 verify: "object" = None, wall_clock: "object" = None,
                 max_ttl: float = 300.0, skew: float = 30.0,
                 replay: "ReplayCache | None" = None) -> None:
        self.device_id = device_id
        self.gateway_id = gateway_id
        self.actions = actions_for(three_star)
        self.able = verify is not None and wall_clock is not None
        self._auth = None  # type: CommandAuthorizer | None
        if self.able:
            # Only a device that can verify loads the envelope checks (a port without Ed25519
            # refuses every ★★★ action and keeps its heap for the rest).
            from firmware.core.command_auth import CommandAuthorizer, ReplayCache  # noqa: F811

            self._auth = CommandAuthorizer(gateway_id, verify, wall_clock, _OwnDevice(), None,
                                           replay or ReplayCache(256), max_ttl=max_ttl,
                                           skew=skew, principal="platform", high_risk=_always)

    def algorithms(self) -> list:
        """What the device declares in its hello (``verifies``): [] when it cannot verify."""
        return list(VERIFY_ALGS) if self.able else []

    def guards(self, action: str) -> bool:
        """True when `action` is ★★★ for this device (its envelope must be checked)."""
        return action in self.actions

    def check(self, action: str, env: object) -> dict:
        """The validated envelope (its params are the signed ones); CommandRefused otherwise."""
        if not self.able:
            raise CommandRefused("cannot-verify", "this device cannot verify the platform's "
                                 "signature: ★★★ actions are refused")
        if env is None:
            raise CommandRefused("unsigned", "action '%s' needs the platform's signed "
                                 "envelope" % action)
        assert self._auth is not None
        cmd = self._auth.check(env, self.device_id)
        if cmd["action"] != action:
            raise CommandRefused("wrong-action", "the signed envelope is for '%s', not '%s'"
                                 % (cmd["action"], action))
        return cmd



def _always(device: str, action: str) -> bool:
    return True


def refused_without_guard(action: str) -> "CommandRefused | None":
    """What an agent with no guard says to a default ★★★ action (fail closed), else None."""
    if action in actions_for(None):
        return CommandRefused("cannot-verify", "this device has no platform key: ★★★ "
                              "actions are refused")
    return None
