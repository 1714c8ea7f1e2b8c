"""The `prune_units:` section, owned by the legacy units kind (reconciler/kinds/legacy_units.py)."""
