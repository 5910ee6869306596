"""A small TI Z-Stack (ZNP) coordinator for tests: MT frames on a pseudo-terminal.

It answers the Monitor-and-Test (MT) commands zigpy-znp sends on start-up, network formation,
install-code joins and leave requests, the way a CC2652 running Z-Stack 3.30 does: frames are
``SOF | len | cmd0 | cmd1 | data | FCS`` (FCS = XOR of len..data); a frame with a bad FCS is
dropped (and counted). NV memory is a plain store (OSAL items and the extended NV tables), so
whatever the library writes it reads back. Over the air it models just enough of the trust
centre: ``join()`` admits a device only while joining is permitted and (when Z-Stack is told
joins use install codes) only with the link key installed for that IEEE address; ``rejoin()``
is a device that already holds the network key coming back through a router. Both report the
join to the host as ``ZDO_TC_DEV_IND``. Leave requests the host sends are recorded.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import struct
import time
import tty
from dataclasses import dataclass, field

from zigpy_znp.types.nvids import ExNvIds, OsalNvIds  # NV item ids (constants only)

SOF = 0xFE
SREQ, AREQ, SRSP = 0x20, 0x40, 0x60
SYS, AF, ZDO, UTIL, APPCFG = 0x01, 0x04, 0x05, 0x07, 0x0F
SUCCESS, FAILURE, INVALID_PARAMETER, NV_ITEM_UNINIT = 0x00, 0x01, 0x02, 0x09
CAPABILITIES = 0x0001 | 0x0002 | 0x0004 | 0x0008 | 0x0010 | 0x0040 | 0x0100 | 0x0400
ZDO_MGMT_LEAVE_REQ = 0x0034
ZDO_MGMT_PERMIT_JOIN_REQ = 0x0036
DEFAULT_TC_LINK_KEY = b"ZigBeeAlliance09"


def fcs(body: bytes) -> int:
    """XOR of the length, command and data bytes."""
    out = 0
    for b in body:
        out ^= b
    return out


def frame(cmd0: int, cmd1: int, data: bytes = b"") -> bytes:
    """One MT frame with its FCS."""
    body = bytes([len(data), cmd0, cmd1]) + data
    return bytes([SOF]) + body + bytes([fcs(body)])


def ieee_bytes(ieee: str) -> bytes:
    """EUI-64 text (big-endian, colon separated) as on the wire (little-endian)."""
    return bytes.fromhex(ieee.replace(":", ""))[::-1]


def ieee_text(raw: bytes) -> str:
    """EUI-64 wire bytes as text."""
    return ":".join("%02x" % b for b in raw[::-1])


@dataclass
class Sent:
    """A frame the host asked the coordinator to send over the air."""

    dst: int
    dst_ep: int
    cluster: int
    data: bytes


@dataclass
class ZnpState:
    """Coordinator memory: NV items, trust-centre table, permit-join, radio state."""

    ieee: str = field(default_factory=lambda: "00:12:4b:" + ":".join(
        "%02x" % b for b in os.urandom(5)))
    osal: dict[int, bytearray] = field(default_factory=dict)
    ex: dict[tuple[int, int, int], bytearray] = field(default_factory=dict)
    install_keys: dict[str, bytes] = field(default_factory=dict)
    join_uses_install_code: bool = False
    tc_require_key_exchange: bool = False
    permit_until: float = 0.0
    formed: bool = False
    endpoints: list[int] = field(default_factory=list)


class ZnpResponder:
    """The coordinator end of a pty; ``path`` is what the library opens."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.state = ZnpState()
        self.buf = bytearray()
        self.bad_fcs = 0
        self.requests: list[tuple[int, int]] = []
        self.unknown: list[tuple[int, int]] = []
        self.sent: list[Sent] = []
        self.simple: dict[int, bytes] = {}
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._preload()

    # -- plumbing -------------------------------------------------------------------------
    def start(self) -> None:
        """Serve frames on the running loop."""
        self._loop = asyncio.get_running_loop()
        os.set_blocking(self.master, False)
        self._loop.add_reader(self.master, self._readable)

    def close(self) -> None:
        """Stop serving and close both ends."""
        if self.closed:
            return
        self.closed = True
        if self._loop is not None:
            self._loop.remove_reader(self.master)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def _write(self, data: bytes) -> None:
        if not self.closed:
            os.write(self.master, data)

    def _readable(self) -> None:
        try:
            chunk = os.read(self.master, 4096)
        except (BlockingIOError, OSError):
            return
        self.buf += chunk
        while True:
            start = self.buf.find(bytes([SOF]))
            if start < 0:
                self.buf.clear()
                return
            del self.buf[:start]
            if len(self.buf) < 5 or len(self.buf) < self.buf[1] + 5:
                return
            n = self.buf[1]
            body, check = bytes(self.buf[1:4 + n]), self.buf[4 + n]
            del self.buf[:5 + n]
            if fcs(body) != check:
                self.bad_fcs += 1
                continue
            self._dispatch(body[1], body[2], body[3:])

    def _dispatch(self, cmd0: int, cmd1: int, data: bytes) -> None:
        self.requests.append((cmd0, cmd1))
        kind, sub = cmd0 & 0xE0, cmd0 & 0x1F
        handler = getattr(self, "_%02x_%02x" % (cmd0, cmd1), None)
        if handler is None:
            self.unknown.append((cmd0, cmd1))
            if kind == SREQ:  # MT RPC error: command id not recognised
                self._write(frame(SRSP, 0x00, bytes([0x02, cmd0, cmd1])))
            return
        for out in handler(data) or []:
            self._write(out)
        del sub

    def _later(self, delay: float, *frames: bytes) -> None:
        assert self._loop is not None
        self._loop.call_later(delay, lambda: [self._write(f) for f in frames])

    @staticmethod
    def _status(cmd0: int, cmd1: int, status: int = SUCCESS) -> bytes:
        return frame(SRSP | (cmd0 & 0x1F), cmd1, bytes([status]))

    # -- NV ------------------------------------------------------------------------------
    def _preload(self) -> None:
        """What a freshly flashed Z-Stack 3.30 holds: its address and the stack settings."""
        o = self.state.osal
        o[OsalNvIds.EXTADDR] = bytearray(ieee_bytes(self.state.ieee))
        o[OsalNvIds.STARTUP_OPTION] = bytearray(b"\x00")
        o[OsalNvIds.LOGICAL_TYPE] = bytearray(b"\x00")
        for nv, value in ((OsalNvIds.CONCENTRATOR_ENABLE, 0),
                          (OsalNvIds.CONCENTRATOR_DISCOVERY, 120),
                          (OsalNvIds.CONCENTRATOR_RC, 0), (OsalNvIds.SRC_RTG_EXPIRY_TIME, 30),
                          (OsalNvIds.NWK_CHILD_AGE_ENABLE, 1),
                          (OsalNvIds.BCAST_DELIVERY_TIME, 30), (OsalNvIds.ZDO_DIRECT_CB, 0)):
            o[nv] = bytearray([value])
        o[OsalNvIds.APS_LINK_KEY_TABLE] = bytearray(2 + 6 * 8)  # count + 8 slots, empty
        for sub in range(2):  # preallocated security material slots (frame counter, EPID)
            self.state.ex[(1, ExNvIds.NWK_SEC_MATERIAL_TABLE, sub)] = bytearray(12)

    def _21_13(self, d: bytes) -> list[bytes]:  # OSAL_NV_LENGTH
        (nv,) = struct.unpack("<H", d[:2])
        return [frame(0x61, 0x13, struct.pack("<H", len(self.state.osal.get(nv, b""))))]

    def _21_07(self, d: bytes) -> list[bytes]:  # OSAL_NV_ITEM_INIT
        nv, length, n = struct.unpack("<HHB", d[:5])
        if nv in self.state.osal:
            return [self._status(0x21, 0x07, SUCCESS)]
        value = bytearray(length)
        value[:n] = d[5:5 + n]
        self.state.osal[nv] = value
        return [self._status(0x21, 0x07, NV_ITEM_UNINIT)]

    def _21_12(self, d: bytes) -> list[bytes]:  # OSAL_NV_DELETE
        (nv,) = struct.unpack("<H", d[:2])
        return [self._status(0x21, 0x12, SUCCESS if self.state.osal.pop(nv, None) is not None
                             else NV_ITEM_UNINIT)]

    def _21_08(self, d: bytes) -> list[bytes]:  # OSAL_NV_READ
        nv, off = struct.unpack("<HB", d[:3])
        return [self._read_rsp(0x08, self.state.osal.get(nv), off)]

    def _21_1c(self, d: bytes) -> list[bytes]:  # OSAL_NV_READ_EXT
        nv, off = struct.unpack("<HH", d[:4])
        return [self._read_rsp(0x1C, self.state.osal.get(nv), off)]

    @staticmethod
    def _read_rsp(cmd1: int, value: bytearray | None, off: int) -> bytes:
        if value is None or off > len(value):
            return frame(0x61, cmd1, bytes([INVALID_PARAMETER, 0]))
        chunk = bytes(value[off:off + 244])
        return frame(0x61, cmd1, bytes([SUCCESS, len(chunk)]) + chunk)

    def _write_osal(self, nv: int, off: int, data: bytes) -> int:
        value = self.state.osal.get(nv)
        if value is None:
            return NV_ITEM_UNINIT
        if off + len(data) > len(value):
            return 0x0C  # NV_BAD_ITEM_LEN
        value[off:off + len(data)] = data
        self._nv_written(nv)
        return SUCCESS

    def _21_09(self, d: bytes) -> list[bytes]:  # OSAL_NV_WRITE
        nv, off, n = struct.unpack("<HBB", d[:4])
        return [self._status(0x21, 0x09, self._write_osal(nv, off, d[4:4 + n]))]

    def _21_1d(self, d: bytes) -> list[bytes]:  # OSAL_NV_WRITE_EXT
        nv, off, n = struct.unpack("<HHH", d[:6])
        return [self._status(0x21, 0x1D, self._write_osal(nv, off, d[6:6 + n]))]

    def _ex_key(self, d: bytes) -> tuple[int, int, int]:
        sys_id, item, sub = struct.unpack("<BHH", d[:5])
        return sys_id, item, sub

    def _21_32(self, d: bytes) -> list[bytes]:  # NV_LENGTH
        return [frame(0x61, 0x32, struct.pack("<I", len(self.state.ex.get(self._ex_key(d), b""))))]

    def _21_30(self, d: bytes) -> list[bytes]:  # NV_CREATE
        key = self._ex_key(d)
        (length,) = struct.unpack("<I", d[5:9])
        if key in self.state.ex:
            return [self._status(0x21, 0x30, SUCCESS)]
        self.state.ex[key] = bytearray(length)
        return [self._status(0x21, 0x30, NV_ITEM_UNINIT)]

    def _21_31(self, d: bytes) -> list[bytes]:  # NV_DELETE
        gone = self.state.ex.pop(self._ex_key(d), None)
        return [self._status(0x21, 0x31, SUCCESS if gone is not None else NV_ITEM_UNINIT)]

    def _21_33(self, d: bytes) -> list[bytes]:  # NV_READ
        (off, _n) = struct.unpack("<HB", d[5:8])
        return [self._read_rsp(0x33, self.state.ex.get(self._ex_key(d)), off)]

    def _21_34(self, d: bytes) -> list[bytes]:  # NV_WRITE
        key = self._ex_key(d)
        off, n = struct.unpack("<HB", d[5:8])
        value = self.state.ex.get(key)
        if value is None or off + n > len(value):
            return [self._status(0x21, 0x34, NV_ITEM_UNINIT)]
        value[off:off + n] = d[8:8 + n]
        return [self._status(0x21, 0x34, SUCCESS)]

    def _nv_written(self, nv: int) -> None:
        """Z-Stack keeps the active network key in step with the pre-configured key."""

    # -- SYS / UTIL ----------------------------------------------------------------------
    def _21_01(self, _d: bytes) -> list[bytes]:  # PING
        return [frame(0x61, 0x01, struct.pack("<H", CAPABILITIES))]

    def _21_02(self, _d: bytes) -> list[bytes]:  # VERSION: Z-Stack 3.30 on a CC2652
        return [frame(0x61, 0x02, struct.pack("<BBBBBIBI", 2, 1, 2, 7, 1, 20240710, 0,
                                              0xFFFFFFFF))]

    def _41_00(self, _d: bytes) -> list[bytes]:  # RESET_REQ (soft) -> RESET_IND
        if self.state.osal.get(OsalNvIds.STARTUP_OPTION, b"\x00")[0] & 0x03:
            self._clear_network()
        # a deleted EXTADDR comes back as the chip's own address
        self.state.osal.setdefault(OsalNvIds.EXTADDR, bytearray(ieee_bytes(self.state.ieee)))
        self._later(0.01, frame(0x41, 0x80, bytes([0x02, 2, 1, 2, 7, 1])))
        return []

    def _21_14(self, d: bytes) -> list[bytes]:  # SET_TX_POWER
        return [frame(0x61, 0x14, bytes([SUCCESS]))]

    def _27_49(self, _d: bytes) -> list[bytes]:  # ASSOC_FIND_DEVICE: 36-byte aligned struct
        return [frame(0x67, 0x49, bytes([0xFE, 0xFF]) + bytes(34))]

    def _27_0a(self, _d: bytes) -> list[bytes]:  # LED_CONTROL
        return [frame(0x67, 0x0A, bytes([SUCCESS]))]

    def _27_63(self, d: bytes) -> list[bytes]:  # ASSOC_REMOVE
        return [frame(0x67, 0x63, bytes([SUCCESS]))]

    # -- network formation ---------------------------------------------------------------
    def _clear_network(self) -> None:
        o = self.state.osal
        for nv in (OsalNvIds.NIB, OsalNvIds.BDBNODEISONANETWORK, OsalNvIds.NWK_ACTIVE_KEY_INFO,
                   OsalNvIds.NWK_ALTERN_KEY_INFO):
            o.pop(nv, None)
        o[OsalNvIds.STARTUP_OPTION] = bytearray(b"\x00")
        self.state.formed = False
        self.state.install_keys.clear()

    def network_key(self) -> bytes:
        """The network key the coordinator distributes (from NV)."""
        info = self.state.osal.get(OsalNvIds.NWK_ACTIVE_KEY_INFO)
        if info is not None:
            return bytes(info[1:17])
        return bytes(self.state.osal.get(OsalNvIds.PRECFGKEY, bytes(16)))

    def _form(self) -> None:
        """BDB network formation: a NIB for a started coordinator, keys from NV."""
        from zigpy_znp import types as zt  # the NIB is Z-Stack's own struct layout

        o = self.state.osal
        channels = struct.unpack("<I", bytes(o.get(OsalNvIds.CHANLIST, b"\x00\x80\x00\x00")))[0]
        channel = next((c for c in range(11, 27) if channels & (1 << c)), 15)
        pan = struct.unpack("<H", bytes(o.get(OsalNvIds.PANID, b"\xff\xff")))[0]
        if pan == 0xFFFF:
            pan = secrets.randbelow(0xFFF0) + 1
        epid = bytes(o.get(OsalNvIds.APS_USE_EXT_PANID, os.urandom(8)))
        nib = zt.NIB(
            SequenceNum=0, PassiveAckTimeout=5, MaxBroadcastRetries=2, MaxChildren=0,
            MaxDepth=20, MaxRouters=0, dummyNeighborTable=0, BroadcastDeliveryTime=30,
            ReportConstantCost=0, RouteDiscRetries=0, dummyRoutingTable=0, SecureAllFrames=1,
            SecurityLevel=5, SymLink=1, CapabilityFlags=143, TransactionPersistenceTime=7,
            nwkProtocolVersion=2, RouteDiscoveryTime=5, RouteExpiryTime=30, nwkDevAddress=0,
            nwkLogicalChannel=channel, nwkCoordAddress=0,
            nwkCoordExtAddress=zt.EUI64(bytes(8)), nwkPanId=pan,
            nwkState=zt.NwkState.NWK_ROUTER, channelList=zt.Channels(1 << channel),
            beaconOrder=15, superFrameOrder=15, scanDuration=4, battLifeExt=0,
            allocatedRouterAddresses=1, allocatedEndDeviceAddresses=1, nodeDepth=0,
            extendedPANID=zt.EUI64(epid), nwkKeyLoaded=True,
            spare1=zt.NwkKeyDesc(KeySeqNum=0, Key=zt.KeyData(bytes(16))),
            spare2=zt.NwkKeyDesc(KeySeqNum=0, Key=zt.KeyData(bytes(16))),
            spare3=0, spare4=0, nwkLinkStatusPeriod=60, nwkRouterAgeLimit=3,
            nwkUseMultiCast=False, nwkIsConcentrator=True, nwkConcentratorDiscoveryTime=120,
            nwkConcentratorRadius=10, nwkAllFresh=1, nwkManagerAddr=0,
            nwkTotalTransmissions=0, nwkUpdateId=0)
        o[OsalNvIds.NIB] = bytearray(nib.serialize(align=True))
        o[OsalNvIds.BDBNODEISONANETWORK] = bytearray(b"\x01")
        key = bytes(o.get(OsalNvIds.PRECFGKEY, os.urandom(16)))
        o.setdefault(OsalNvIds.NWK_ACTIVE_KEY_INFO, bytearray(b"\x00" + key))
        o.setdefault(OsalNvIds.NWK_ALTERN_KEY_INFO, bytearray(b"\x00" + key))
        o.setdefault(OsalNvIds.TCLK_SEED, bytearray(os.urandom(16)))
        self.state.ex[(1, ExNvIds.NWK_SEC_MATERIAL_TABLE, 0)] = bytearray(
            struct.pack("<I", 1) + epid)
        self.state.formed = True

    def _2f_05(self, d: bytes) -> list[bytes]:  # BDB_START_COMMISSIONING
        mode = d[0]
        out = [self._status(0x2F, 0x05)]
        if mode & 0x04:  # network formation; a device already on a network resumes it
            first = not (OsalNvIds.NIB in self.state.osal and
                         self.state.osal.get(OsalNvIds.BDBNODEISONANETWORK) == b"\x01")
            if first:
                self._form()
            self._later(0.01,
                        frame(0x45, 0xC0, bytes([8])),  # STATE_CHANGE_IND starting
                        frame(0x4F, 0x80, bytes([1, 0x04, 0x04])),  # in progress
                        frame(0x45, 0xC0, bytes([9])),  # started as coordinator
                        frame(0x4F, 0x80, bytes([0 if first else 0x08, 0x04, 0x00])))
        return out

    def _2f_08(self, _d: bytes) -> list[bytes]:  # BDB_SET_CHANNEL
        return [self._status(0x2F, 0x08)]

    def _2f_06(self, d: bytes) -> list[bytes]:  # BDB_SET_JOIN_USES_INSTALL_CODE_KEY
        self.state.join_uses_install_code = bool(d[0])
        return [self._status(0x2F, 0x06)]

    def _2f_09(self, d: bytes) -> list[bytes]:  # BDB_SET_TC_REQUIRE_KEY_EXCHANGE
        self.state.tc_require_key_exchange = bool(d[0])
        return [self._status(0x2F, 0x09)]

    def _2f_04(self, d: bytes) -> list[bytes]:  # BDB_ADD_INSTALL_CODE
        fmt, ieee, code = d[0], ieee_text(d[1:9]), d[9:]
        if fmt != 0x02 or len(code) != 16:  # only keys derived from install codes here
            return [self._status(0x2F, 0x04, INVALID_PARAMETER)]
        self.state.install_keys[ieee] = bytes(code)
        return [self._status(0x2F, 0x04)]

    # -- AF / ZDO ------------------------------------------------------------------------
    def _24_00(self, d: bytes) -> list[bytes]:  # AF_REGISTER
        ep, profile, dev_id, ver = struct.unpack("<BHHB", d[:6])
        n_in = d[7]
        ins = d[8:8 + 2 * n_in]
        n_out = d[8 + 2 * n_in]
        outs = d[9 + 2 * n_in:9 + 2 * n_in + 2 * n_out]
        self.state.endpoints.append(ep)
        self.simple[ep] = (struct.pack("<BHHB", ep, profile, dev_id, ver) + bytes([n_in]) + ins
                           + bytes([n_out]) + outs)
        return [frame(0x64, 0x00, bytes([SUCCESS]))]

    def _zdo_self(self, cluster: int, tsn: int, req: bytes) -> list[bytes]:
        """The coordinator's own ZDO server answers requests about itself."""
        if cluster == 0x0002:  # Node_Desc_req: coordinator, 2.4 GHz, TI manufacturer code
            desc = bytes([0x00, 0x40, 0x8F]) + struct.pack("<HBHHHB", 0x0000, 80, 160, 0x2C00,
                                                              160, 0)
            rsp, rsp_cluster = bytes([SUCCESS]) + struct.pack("<H", 0) + desc, 0x8002
        elif cluster == 0x0005:  # Active_EP_req
            eps = sorted(self.simple)
            rsp, rsp_cluster = bytes([SUCCESS]) + struct.pack("<HB", 0, len(eps)) + bytes(eps), \
                0x8005
        elif cluster == 0x0004 and len(req) >= 3 and req[2] in self.simple:  # Simple_Desc_req
            sd = self.simple[req[2]]
            rsp, rsp_cluster = bytes([SUCCESS]) + struct.pack("<HB", 0, len(sd)) + sd, 0x8004
        else:
            return []
        return [frame(0x45, 0xFF, struct.pack("<HBHBBH", 0, 0, rsp_cluster, 0, tsn, 0) + rsp)]

    def _25_3e(self, _d: bytes) -> list[bytes]:  # ZDO_MSG_CB_REGISTER
        return [self._status(0x25, 0x3E)]

    def _25_40(self, _d: bytes) -> list[bytes]:  # ZDO_STARTUP_FROM_APP
        return [frame(0x65, 0x40, bytes([0]))]

    def _25_45(self, _d: bytes) -> list[bytes]:  # ZDO_EXT_ROUTE_DISC
        return [self._status(0x25, 0x45)]

    def _25_46(self, _d: bytes) -> list[bytes]:  # ZDO_EXT_ROUTE_CHK: the route is active
        return [frame(0x65, 0x46, bytes([SUCCESS]))]

    def _25_36(self, d: bytes) -> list[bytes]:  # ZDO_MGMT_PERMIT_JOIN_REQ
        _mode, dst, duration, _tc = struct.unpack("<BHBB", d[:5])
        self.state.permit_until = time.monotonic() + duration if duration else 0.0
        return [self._status(0x25, 0x36),
                frame(0x45, 0xB6, struct.pack("<HB", dst if dst < 0xFFF8 else 0, SUCCESS)),
                frame(0x45, 0xCB, bytes([duration]))]

    def _24_02(self, d: bytes) -> list[bytes]:  # AF_DATA_REQUEST_EXT
        mode = d[0]
        addr_len = 8 if mode == 3 else 2
        dst = int.from_bytes(d[1:1 + addr_len], "little")
        p = 1 + 8  # the address field is always 8 bytes wide in the Ext request
        dst_ep = d[p]
        cluster = struct.unpack("<H", d[p + 4:p + 6])[0]
        tsn, n = d[p + 6], struct.unpack("<H", d[p + 9:p + 11])[0]
        payload = d[p + 11:p + 11 + n]
        self.sent.append(Sent(dst, dst_ep, cluster, payload))
        out = [frame(0x64, 0x02, bytes([SUCCESS]))]
        if dst_ep == 0 and mode == 0x02 and dst == 0x0000 and payload:
            out += self._zdo_self(cluster, payload[0], payload[1:])
        if dst_ep == 0 and cluster == ZDO_MGMT_PERMIT_JOIN_REQ and len(payload) >= 2:
            self.state.permit_until = time.monotonic() + payload[1] if payload[1] else 0.0
        if dst_ep != 0 and mode != 0x0F:
            out.append(frame(0x44, 0x80, bytes([SUCCESS, d[p + 3], tsn])))  # DATA_CONFIRM
        return out

    # -- the air -------------------------------------------------------------------------
    def permitting(self) -> bool:
        """Joining is open on the coordinator right now."""
        return time.monotonic() < self.state.permit_until

    def join(self, ieee: str, nwk: int, key: bytes | None, parent: int = 0x0000) -> bool:
        """A device associates and asks the trust centre for the network key."""
        if not self.permitting():
            return False
        if self.state.join_uses_install_code:
            if key is None or self.state.install_keys.get(ieee.lower()) != key:
                return False
        elif key not in (DEFAULT_TC_LINK_KEY, self.state.install_keys.get(ieee.lower())):
            return False
        self._announce(ieee, nwk, parent)
        return True

    def rejoin(self, ieee: str, nwk: int, parent: int = 0x1234) -> None:
        """A device that holds the network key rejoins through a router (no TC check)."""
        self._announce(ieee, nwk, parent)

    def _announce(self, ieee: str, nwk: int, parent: int) -> None:
        raw = ieee_bytes(ieee)
        self._write(frame(0x45, 0xCA, struct.pack("<H", nwk) + raw + struct.pack("<H", parent)))
        # ZDO Device_annce from the device, passed up because ZDO_DIRECT_CB is set
        self._write(frame(0x45, 0xFF, struct.pack("<HBHBBH", nwk, 1, 0x0013, 0, 0x42, 0xFFFD)
                          + struct.pack("<H", nwk) + raw + bytes([0x80])))

    def leave_requests(self) -> list[str]:
        """IEEE addresses the host asked to leave (ZDO Mgmt_Leave_req over the air)."""
        return [ieee_text(s.data[1:9]) for s in self.sent
                if s.dst_ep == 0 and s.cluster == ZDO_MGMT_LEAVE_REQ and len(s.data) >= 9]

    def corrupt_next_fcs(self) -> None:
        """Send the host a frame with a wrong FCS (it must drop it)."""
        f = bytearray(frame(0x45, 0xCB, bytes([0])))
        f[-1] ^= 0xFF
        self._write(bytes(f))
