"""The composition root: which services a gateway runs, in start order (CPython)."""

from __future__ import annotations

from functools import partial
from typing import Any

from firmware.core.errors import ConfigError, MamoriError
from firmware.core.events import Event
from firmware.device.credentials import load as load_credentials
from firmware.gateway.accesslog.service import AccessLogService
from firmware.gateway.admin.service import AdminService
from firmware.gateway.ble.wiring import ble_service
from firmware.gateway.devices.revocation import RevocationService
from firmware.gateway.devices.router import DeviceRouter
from firmware.gateway.firewall.service import FirewallService
from firmware.gateway.identity.binding import DeviceBinding
from firmware.gateway.identity.install import installed
from firmware.gateway.identity.installer import install_command
from firmware.gateway.identity.policies import check_all as check_policies
from firmware.gateway.lan.service import LanService
from firmware.gateway.lan.tls import secure_lan
from firmware.gateway.monitor.wiring import monitor_services
from firmware.gateway.owner.resale import ResaleHoldService, finish_interrupted
from firmware.gateway.runtime.control import ControlService
from firmware.gateway.runtime.endpoint import planned_port
from firmware.gateway.runtime.gateway import Gateway, Service
from firmware.gateway.runtime.interfaces import Commission, FirmwareStatus
from firmware.gateway.runtime.resalemarker import resale_pending
from firmware.gateway.selftest.remote_service import RemoteSelftestService
from firmware.gateway.sim.broker import BrokerService, BrokerTls, mosquitto_binary
from firmware.gateway.sim.devices import SimDevicesService
from firmware.gateway.sim.house import DemoHouse, load_house
from firmware.gateway.sim.radios import SimRadioDevicesService
from firmware.gateway.update import status as update_status
from firmware.gateway.update.service import OtaService
from firmware.gateway.usbguard.wiring import usb_services
from firmware.gateway.wan.from_install import installed_acl, wan_identity
from firmware.gateway.wan.logupload import LogUplinkService
from firmware.gateway.wan.service import build_wan_service
from firmware.gateway.zigbee.wiring import zigbee_service


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
    """The sim board's demo house, when the installer's house list was given."""
    if gw.config.sim_house is None:
        return None
    if not gw.board.is_sim:
        raise ConfigError("a simulated house runs only on the sim board")
    return load_house(gw.config.sim_house)


def commissioning(gw: Gateway) -> Commission:
    """The live commissioning self-test, as the admin API runs it for `mamori commission`."""

    def run(level: int | None) -> dict[str, Any]:
        from firmware.gateway.selftest.commissioning import DIR, PUBLIC_KEY, commission

        out = commission(gw.state_dir, gw.board.name, level)
        return dict(out, public_key=(gw.state_dir / DIR / PUBLIC_KEY).read_bytes())

    return run


def firmware_status(gw: Gateway) -> FirmwareStatus:
    """The running firmware as the update room reads it, for the admin API and the resale
    reset's record."""
    return partial(update_status, gw.state_dir, gw.board)


def build_services(gw: Gateway) -> list[Service]:
    """Create the gateway's services for its board and configuration."""
    cfg = gw.config
    firmware = firmware_status(gw)
    # A resale reset a power cut interrupted is finished before anything opens a store.
    finished = finish_interrupted(gw.state_dir, gw.board, firmware)
    # The access log first (it opens no port) so it records every other service's events;
    # then the firewall, so the posture is in place before any server listens.
    accesslog = AccessLogService(gw)
    ota = OtaService(gw)
    services: list[Service] = [accesslog, FirewallService(gw), ota]
    services += usb_services(gw)  # default-deny USB before anything else listens
    control = ControlService(gw)  # local control socket (root / gateway uid only)
    services.append(control)
    if resale_pending(gw.state_dir):
        # Resold (R2-9): no device, LAN, admin or WAN service until the OTA agent has installed
        # the latest firmware and cleared the marker.
        return services + [ResaleHoldService(gw, finished)]
    demo = _demo(gw)
    bundle = cfg.bundle
    if bundle is None and demo is not None and not installed(gw.state_dir):
        bundle = demo.bundle  # first start of the demo: install what the installer made
    secure = secure_lan(gw.state_dir, gw.board, bundle)
    if secure is None:
        # A blank board: the installer's tool hands it its bundle (`mamori commission`).
        control.register("install", install_command(gw))
        gw.emit(Event("gateway.unprovisioned", "warning", "gateway", action="start",
                      result="service disabled",
                      reason="no installation bundle: run with --bundle FILE"
                      + (" (or start the demo house with `mamori demo`)"
                         if gw.board.is_sim else "")))
        return services
    ctx, authorizer, gateway_id = secure
    gw.gateway_id = gateway_id
    for problem in check_policies(gw.state_dir):  # admission fails closed until fixed
        gw.emit(Event("config.invalid", "alert", "gateway", action="start",
                      target=problem.source, result="refused", reason=str(problem)))
    binding = DeviceBinding(gw.state_dir)  # one-time installation tickets (new devices)
    lan = LanService(gw, cfg.lan_host, planned_port(gw.state_dir, gw.board, cfg.lan_port),
                     ssl_context=ctx, authorizer=binding.wrap(authorizer), stable=True)
    # The monitor before the LAN: its admission hook and bus subscription are in place first.
    services += monitor_services(gw, lan)
    services.append(lan)
    services.append(AdminService(gw, commissioning(gw), firmware))  # LAN-only HTTPS admin API
    ble = ble_service(gw, binding.check)  # on the board's BLE backend, if it has one
    zigbee = zigbee_service(gw, control)  # when the board declares a Zigbee coordinator
    services += [s for s in (ble, zigbee) if s is not None]
    router = DeviceRouter(gw, {"ip": lan, "ble": ble, "zigbee": zigbee})
    revocation = RevocationService(gw, router, control)  # after the channels it closes
    services.append(revocation)
    broker_url = cfg.broker
    if demo is not None and broker_url is None and _have_mosquitto(gw):
        p = demo.platform
        broker = BrokerService(gw, BrokerTls(cafile=p["ca"], certfile=p["cert"],
                                             keyfile=p["key"], crlfile=p["crl"]))
        services.append(broker)
        broker_url = broker.broker.url
    if broker_url is not None:
        wan = build_wan_service(gw, broker_url, wan_identity(gw.state_dir, gw.board, broker_url),
                                router.execute, installed_acl(gw.state_dir),
                                crl_handler=revocation.install, high_risk=router.high_risk,
                                known=router.knows)
        services += [wan, LogUplinkService(gw, wan, accesslog), RemoteSelftestService(gw, wan)]
        ota.uplink = wan.submit  # update results go to the platform on the `update` stream
    if demo is not None and demo.by_transport("ip"):
        ip = demo.by_transport("ip")
        creds = {dev_id: load_credentials(d["credentials"]) for dev_id, d in ip.items()}
        services.append(SimDevicesService(gw, lan, ip, credentials=creds))
    if demo is not None and demo.by_transport("ble", "zigbee"):
        services.append(SimRadioDevicesService(gw, ble, zigbee, demo.by_transport("ble", "zigbee")))
    return services
