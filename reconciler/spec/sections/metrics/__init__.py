"""The `metrics:` section, owned by the metrics kind (reconciler/kinds/metrics.py)."""
