"""The composition root: which services a gateway runs, in start order (CPython)."""

from __future__ import annotations

from firmware.gateway.accesslog.service import AccessLogService
from firmware.gateway.firewall.service import FirewallService
from firmware.gateway.lantls import secure_lan
from firmware.gateway.runtime import Gateway, Service
from firmware.gateway.services.lan import LanService, registry_authorizer
from firmware.gateway.services.simdevices import SimDevicesService, sim_identities

DEFAULT_SIM_DEVICES = 4


def build_services(gw: Gateway) -> list[Service]:
    """Create the gateway's services for its board and configuration."""
    # The firewall goes first: the posture is in place before any server listens.
    # The access log (it opens no port) precedes it, so it records every service's events.
    services: list[Service] = [AccessLogService(gw), FirewallService(gw)]
    cfg = gw.config
    is_sim = gw.board["name"] == "sim"
    sim_count = cfg.sim_devices
    if sim_count is None:
        sim_count = DEFAULT_SIM_DEVICES if is_sim and cfg.bundle is None else 0
    identities = sim_identities(sim_count)
    # Mutual TLS from the installed bundle (installed now when --bundle is given); the sim
    # devices of `make run` use the registry authorizer instead.
    secure = secure_lan(gw.state_dir, gw.board, cfg.bundle) if not identities else None
    if secure is not None:
        ctx, authorizer, cfg.extra["gateway_id"] = secure
        lan = LanService(gw, cfg.lan_host, cfg.lan_port, ssl_context=ctx, authorizer=authorizer)
    else:
        lan = LanService(gw, cfg.lan_host, cfg.lan_port,
                         authorizer=registry_authorizer(gw, identities))
    services.append(lan)
    if identities:
        services.append(SimDevicesService(gw, lan, identities))
    return services
