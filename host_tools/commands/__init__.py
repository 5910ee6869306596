"""`mamori` sub-commands: every module here with a register(subparsers) function is one."""
