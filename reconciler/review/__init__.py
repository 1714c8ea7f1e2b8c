"""Reviewing plans: saved plans, snapshots, redaction."""
