"""BLE: Noise IK mutual authentication and AEAD channel over GATT, legacy pairing refused."""
