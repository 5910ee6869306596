"""The device agent that device makers embed: authentication, heartbeats, commands."""
