"""The composition root: which services a gateway runs, in start order (CPython)."""

from __future__ import annotations

from pathlib import Path

from firmware.core.errors import ConfigError, MamoriError
from firmware.core.events import Event
from firmware.gateway.accesslog.service import AccessLogService
from firmware.gateway.admin.service import AdminService
from firmware.gateway.binding import DeviceBinding
from firmware.gateway.control import ControlService
from firmware.gateway.demo import DEMO_GATEWAY, DemoHouse, ensure_demo_house
from firmware.gateway.devices import DeviceRouter
from firmware.gateway.firewall.service import FirewallService
from firmware.gateway.install import IDENTITY
from firmware.gateway.lantls import client_context, load_credentials, secure_lan
from firmware.gateway.monitor.wiring import monitor_services
from firmware.gateway.owner.resale import ResaleHoldService, finish_interrupted, resale_pending
from firmware.gateway.radios import radio_services
from firmware.gateway.runtime import Gateway, Service
from firmware.gateway.selftest.remote_service import RemoteSelftestService
from firmware.gateway.services.broker import BrokerService, BrokerTls, mosquitto_binary
from firmware.gateway.services.lan import LanService
from firmware.gateway.services.simdevices import SimDevicesService
from firmware.gateway.services.simradio import SimRadioDevicesService
from firmware.gateway.update.service import OtaService
from firmware.gateway.usbguard.wiring import usb_services
from firmware.gateway.wan.from_install import installed_acl, wan_identity
from firmware.gateway.wan.logupload import LogUplinkService
from firmware.gateway.wan.service import build_wan_service

DEFAULT_SIM_DEVICES = 4


def _installed_id(state_dir: Path) -> str | None:
    meta = Path(state_dir) / IDENTITY / "gateway.json"
    if not meta.is_file():
        return None
    import json

    return str(json.loads(meta.read_text()).get("gateway_id"))


def _have_mosquitto(gw: Gateway) -> bool:
    """The demo's platform broker needs Mosquitto; without it the demo runs LAN-only."""
    try:
        mosquitto_binary()
    except MamoriError as exc:
        gw.emit(Event("demo.no_platform", "warning", "gateway", action="start",
                      result="WAN disabled", reason=str(exc)))
        return False
    return True


def _demo(gw: Gateway) -> DemoHouse | None:
    """The sim board without a bundle runs the demo house (unless a real identity is here)."""
    cfg = gw.config
    if gw.board["name"] != "sim" or cfg.bundle is not None:
        if cfg.sim_devices:
            raise ConfigError("simulated devices exist only in the sim demo (no --bundle)")
        return None
    if _installed_id(gw.state_dir) not in (None, DEMO_GATEWAY):
        return None
    count = DEFAULT_SIM_DEVICES if cfg.sim_devices is None else cfg.sim_devices
    # The default demo also has a BLE and a Zigbee device; an explicit count keeps IP only.
    return ensure_demo_house(gw.state_dir, gw.board, count, radios=cfg.sim_devices is None)


def build_services(gw: Gateway) -> list[Service]:
    """Create the gateway's services for its board and configuration."""
    cfg = gw.config
    # A resale reset a power cut interrupted is finished before anything opens a store.
    finished = finish_interrupted(gw.state_dir, gw.board)
    # The access log first (it opens no port) so it records every other service's events;
    # then the firewall, so the posture is in place before any server listens.
    accesslog = AccessLogService(gw)
    services: list[Service] = [accesslog, FirewallService(gw), OtaService(gw)]
    services += usb_services(gw)  # default-deny USB before anything else listens
    control = ControlService(gw)  # local control socket (root / gateway uid only)
    services.append(control)
    if resale_pending(gw.state_dir):
        # Resold (R2-9): no device, LAN, admin or WAN service until the OTA agent has installed
        # the latest firmware and cleared the marker.
        return services + [ResaleHoldService(gw, finished)]
    demo = _demo(gw)
    secure = secure_lan(gw.state_dir, gw.board, cfg.bundle)
    if secure is None:
        gw.emit(Event("gateway.unprovisioned", "warning", "gateway", action="start",
                      result="service disabled",
                      reason="no installation bundle: run with --bundle FILE"))
        return services
    ctx, authorizer, gateway_id = secure
    cfg.extra["gateway_id"] = gateway_id
    binding = DeviceBinding(gw.state_dir)  # one-time installation tickets (new devices)
    lan = LanService(gw, cfg.lan_host, cfg.lan_port, ssl_context=ctx,
                     authorizer=binding.wrap(authorizer))
    # The monitor before the LAN: its admission hook and bus subscription are in place first.
    services += monitor_services(gw, lan)
    services.append(lan)
    services.append(AdminService(gw))  # LAN-only HTTPS admin API
    ble, zigbee = radio_services(gw, control, binding)
    services += [s for s in (ble, zigbee) if s is not None]
    router = DeviceRouter(gw, {"ip": lan, "ble": ble, "zigbee": zigbee})
    broker_url = cfg.broker
    if demo is not None and broker_url is None and _have_mosquitto(gw):
        p = demo.site_dir / "platform"
        broker = BrokerService(gw, BrokerTls(cafile=p / "ca.pem", certfile=p / "server.pem",
                                             keyfile=p / "server.key",
                                             crlfile=demo.site_dir / "ca" / "crl.pem"))
        services.append(broker)
        broker_url = broker.broker.url
        cfg.extra["demo_site"] = str(demo.site_dir)
    if broker_url is not None:
        wan = build_wan_service(gw, broker_url, wan_identity(gw.state_dir, gw.board, broker_url),
                                router.execute, installed_acl(gw.state_dir))
        services += [wan, LogUplinkService(gw, wan, accesslog), RemoteSelftestService(gw, wan)]
    if demo is not None and demo.identities:
        contexts = {dev_id: client_context(load_credentials(path))
                    for dev_id, path in demo.credentials.items()}
        services.append(SimDevicesService(gw, lan, demo.identities, contexts))
    if demo is not None and demo.radio:
        services.append(SimRadioDevicesService(gw, ble, zigbee, demo.radio))
    return services
