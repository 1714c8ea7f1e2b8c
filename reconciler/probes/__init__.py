"""Probes grouped by the tool they read: each is a command (or in-process read) + a pure parser."""
