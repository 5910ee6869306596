"""USB-port lockdown on Linux: sysfs enforcement, uevents, optional usbguard daemon backend."""
