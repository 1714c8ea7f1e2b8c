"""End-to-end tests: real systemd + logind in systemd-nspawn containers (see harness.py)."""
