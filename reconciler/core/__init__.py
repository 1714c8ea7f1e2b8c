"""The pure core: commands, actions, probes as data, the kind contract, diff and plan."""
