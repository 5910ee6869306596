"""Which actions are ★★★ (unlock, disarm, door open…): one table for gateway and device (portable).

The guideline classes remote actions that open a house to strangers as ★★★: they must be
authorised by the platform for this gateway and this device, fresh and recorded. Such an action
needs the platform's Ed25519 signature on the gateway (``firmware.core.command_auth``) *and* on
the device itself (``firmware.device.portable.threestar``), so a gateway cannot originate one.

The set is data, per model: every model has at least ``DEFAULT_ACTIONS``; a model's allowlist
entry (signed by the site CA, ``mamori provision allow … --three-star ACTION,…``) may add more
(``"three_star": ["open"]`` for a garage door whose ``open`` lets people in). The device gets the
same list in its credentials, taken from the same allowlist entry when it is issued. A list can
only add to the defaults: no model can declare ``unlock`` harmless.

``VERIFY_ALGS`` names the signature algorithms a device can declare in its ``hello``
(``"verifies": ["ed25519"]``); a device that declares none cannot check the platform's
signature, and the gateway refuses ★★★ actions for it (fail closed).
"""

DEFAULT_ACTIONS = ("unlock", "disarm")
VERIFY_ALGS = ("ed25519",)
ENTRY_KEY = "three_star"
MAX_ACTIONS = 16
_ACTION_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"


def valid_action(name: object) -> bool:
    """True for a lower-case action name of 1-32 letters, digits, '_' or '-'."""
    if not isinstance(name, str) or not 1 <= len(name) <= 32:
        return False
    for ch in name:
        if ch not in _ACTION_CHARS:
            return False
    return True


def parse_actions(value: object) -> list:
    """A validated, sorted list of extra ★★★ actions (ValueError names what is wrong)."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_ACTIONS:
        raise ValueError("three_star must be a list of at most %d action names" % MAX_ACTIONS)
    out = []
    for a in value:
        if not valid_action(a):
            raise ValueError("three_star action %r is not a valid action name" % (a,))
        if a not in out:
            out.append(a)
    out.sort()
    return out


def actions_for(entry: object) -> tuple:
    """The ★★★ actions of a model: the defaults plus its entry's ``three_star`` list.

    ``entry`` is an allowlist entry (dict), a device's credentials (dict with ``three_star``),
    a plain list of extra actions, or None (the defaults only). Malformed extras are ignored
    here (they can only add, never remove); writers validate with :func:`parse_actions`.
    """
    extra = entry
    if isinstance(entry, dict):
        extra = entry.get(ENTRY_KEY)
    out = list(DEFAULT_ACTIONS)
    if isinstance(extra, (list, tuple)):
        for a in extra:
            if valid_action(a) and a not in out:
                out.append(a)
    return tuple(out)


def is_three_star(action: str, actions: "tuple | list | None" = None) -> bool:
    """True when `action` is ★★★ for a model whose set is `actions` (None: the defaults)."""
    return action in actions_for(list(actions) if actions is not None else None)


def can_verify(declared: object) -> bool:
    """True when a device's declared algorithms include one the platform signs with."""
    if not isinstance(declared, (list, tuple)):
        return False
    for alg in declared:
        if alg in VERIFY_ALGS:
            return True
    return False
