"""The engine: typed commands and actions, probes, the planner, the runner and apply."""
