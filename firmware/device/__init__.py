"""The device agent device makers embed: peer side of mutual authentication, heartbeats, commands."""
