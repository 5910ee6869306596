"""accesslog."""
