"""The gateway's naming and on-disk layout, shared by the spec checks and the kinds."""
