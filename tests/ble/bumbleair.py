"""Test air: bumble virtual controllers on one local link, real HCI between host and controller."""

from __future__ import annotations

from bumble.controller import Controller
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink


class Air:
    """One radio environment; every ``host()`` is a bumble host on its own virtual controller."""

    def __init__(self) -> None:
        self.link = LocalLink()
        self.controllers: list[Controller] = []

    def host(self) -> Host:
        """A new controller on this air and a host speaking HCI to it."""
        n = len(self.controllers)
        ctl = Controller("C%d" % n, link=self.link,
                         public_address=":".join(["%02X" % (0xA0 + n)] * 6))
        self.controllers.append(ctl)
        return Host(ctl, AsyncPipeSink(ctl))

    async def gateway_host(self) -> Host:
        """Host factory for the gateway's radio."""
        return self.host()
