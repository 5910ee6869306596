"""Platform side of the WAN channel, for tests and demos: watch gateways, send signed commands."""
