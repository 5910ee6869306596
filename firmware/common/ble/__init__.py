"""BLE pieces both the gateway and the device agent need: Noise IK, the channel, framing."""
