"""`mamori-gateway` sub-commands: every module here with register(subparsers) is one."""
