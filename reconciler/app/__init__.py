"""Use cases: plan, apply, probe, status ... wired from the CLI through an explicit context."""
