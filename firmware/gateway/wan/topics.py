"""The MQTT topic layout of one gateway (CPython; also the platform tools' reference).

Everything lives under ``mamori/v1/<gateway-id>/``:

=========================  =========  =====================================================
topic                      direction  payload
=========================  =========  =====================================================
``alerts``                 up         security events (warning and worse), queued, QoS 1
``events``                 up         other notable events (notice), queued, QoS 1
``cmd_result``             up         result of every command: commanded vs actual, or refusal
``logs``                   up         access-log checkpoints and requested log uploads
``selftest``               up         self-test reports and request acknowledgements
``status``                 up         retained online/offline + counters (also the MQTT will)
``update``                 up         result of an update request (installed, current, ...)
``crl``                    up         answer to a CRL push: installed / current / refused
                                      (reason), with the CRL number the gateway now holds
``cmd/<device-id>``        down       command envelope (``firmware.core.command_auth``)
``selftest_req``           down       ``{"id": ...}`` ask for a self-test
``log_req``                down       ``{"id": ..., "since": ...}`` ask for a log upload
``update_req``             down       signed update request (``firmware.core.update.request``)
``crl_push``               down       ``{"id": ..., "crl": PEM}``: the site's signed CRL
                                      (signed and numbered itself; older or equal refused)
=========================  =========  =====================================================

Up-link and down-link kinds never share a name: a gateway reads no up-link topic (its own
retained ``status`` aside), so it can never take its own answer for a request and answer it.

Up-link messages are JSON objects with a unique ``id`` (also the MQTT 5 user property
``msg-id``); delivery is at-least-once, so the platform de-duplicates by ``id``.
"""

from __future__ import annotations

from firmware.core.command_auth import valid_token
from firmware.core.idsyntax import valid_id

PREFIX = "mamori/v1"
UP = ("alerts", "events", "cmd_result", "logs", "selftest", "status", "update", "crl")
DOWN = ("cmd", "selftest_req", "log_req", "update_req", "crl_push")
REQUESTS = tuple(k for k in DOWN if k != "cmd")  # down-link kinds without a device part


def base(gateway_id: str) -> str:
    """The topic prefix of one gateway."""
    return f"{PREFIX}/{gateway_id}"


def up(gateway_id: str, kind: str) -> str:
    """Topic of an up-link stream."""
    if kind not in UP:
        raise ValueError("unknown up-link stream: " + kind)
    return f"{base(gateway_id)}/{kind}"


def command(gateway_id: str, device_id: str) -> str:
    """Topic the platform publishes a device's commands to."""
    return f"{base(gateway_id)}/cmd/{device_id}"


def down(gateway_id: str, kind: str) -> str:
    """Topic of a down-link request stream (not commands)."""
    if kind not in DOWN or kind == "cmd":
        raise ValueError("unknown down-link stream: " + kind)
    return f"{base(gateway_id)}/{kind}"


def subscriptions(gateway_id: str) -> list[str]:
    """What the gateway subscribes to."""
    b = base(gateway_id)
    return [b + "/cmd/+"] + [b + "/" + k for k in REQUESTS]


def parse_down(gateway_id: str, topic: str) -> tuple[str, str | None] | None:
    """(kind, device) for a valid down-link topic of this gateway, else None."""
    prefix = base(gateway_id) + "/"
    if not topic.startswith(prefix):
        return None
    rest = topic[len(prefix):].split("/")
    if len(rest) == 2 and rest[0] == "cmd" and valid_token(rest[1]):
        return "cmd", rest[1]
    if len(rest) == 1 and rest[0] in REQUESTS:
        return rest[0], None
    return None


def parse_up(topic: str) -> tuple[str, str] | None:
    """(gateway, kind) for an up-link topic with a well-formed gateway id, else None."""
    parts = topic.split("/")
    if (len(parts) == 4 and "/".join(parts[:2]) == PREFIX and valid_id(parts[2])
            and parts[3] in UP):
        return parts[2], parts[3]
    return None
