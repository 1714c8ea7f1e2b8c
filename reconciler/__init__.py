"""reconciler: keep a Clawdbot gateway host exactly as a git-committed YAML spec says."""

__version__ = "0.1.0"
