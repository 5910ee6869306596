"""The gateway's access log: encrypted, chained, sealed segments under STATE_DIR/accesslog/."""
