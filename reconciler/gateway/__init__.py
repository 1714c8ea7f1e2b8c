"""Where a gateway profile lives on this host, its versioned installs, backups and addresses:
computed from the spec and the host (no probe), shared by facts, kinds and use cases."""
