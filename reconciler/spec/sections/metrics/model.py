"""The `metrics:` section's model: where every run leaves its Prometheus textfile."""

from __future__ import annotations

from typing import Any

from reconciler.frozen import frozen

# Where the section is in the document, and in the typed Spec (the same names).
MOUNT = ("metrics",)


@frozen
class Metrics:
    """Prometheus textfile output of every apply run (node_exporter's textfile collector)."""

    textfile_dir: str  # absolute; the file written there is reconciler.prom


def build(section: dict[str, Any]) -> Metrics:
    """Validated `metrics:` data -> Metrics."""
    return Metrics(section["textfile_dir"])
