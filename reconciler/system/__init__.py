"""System-level building blocks below the facts: process groups and timeouts (process.py), and
a forked child that became the spec's user (as_user.py). The probes and the runner use them."""
