"""Remote hosts over SSH: ship our own code to the target once, then one round trip per command."""
