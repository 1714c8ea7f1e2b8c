"""The `metrics:` section's semantic rules: a directory root may create and own."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from reconciler.spec.rules import BROAD_DIRS, Issue, Rule, get, inside, system_dir
from reconciler.spec.yaml_source import Document, show

# Where a metrics directory may lie although they are system directories: below them root
# acts for nobody (reconciler/kinds/metrics.py refuses a root step under a directory others
# can write), and a directory the user owns there needs no root.
METRICS_EXEMPT = ("/home", "/tmp", "/var/tmp")


def metrics_dir(doc: Document) -> Iterator[Issue]:
    """metrics.textfile_dir: root may create it and set its group and mode, so neither a system
    directory (or inside one) nor a top-level or broad directory, and no `..`."""
    value = get(doc.data, "metrics", "textfile_dir")
    if not isinstance(value, str) or not value.startswith("/"):
        return  # absent, or the schema's error
    path = ("metrics", "textfile_dir")
    norm = posixpath.normpath(value)
    system = system_dir(norm)
    hint = "name a directory of its own, like /var/lib/prometheus/node-exporter"
    if ".." in value.split("/"):
        yield Issue(path, f"{show(value)} has a `..` component", "write the path without `..`")
    elif system and not any(inside(norm, d) and norm != d for d in METRICS_EXEMPT):
        yield Issue(
            path, f"{show(value)} is a system directory (or inside {system}); a spec may not own it",
            hint,
        )  # fmt: skip
    elif norm in BROAD_DIRS or norm.count("/") == 1:
        yield Issue(path, f"{show(value)} is too broad to be the metrics directory", hint)


RULES: tuple[Rule, ...] = (metrics_dir,)
