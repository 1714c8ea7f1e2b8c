"""The `reconcile:` section, owned by the reconcile timer kind (reconciler/kinds/reconcile_timer.py)."""
