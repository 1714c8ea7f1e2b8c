"""The `linger:` section, owned by the linger kind (reconciler/kinds/linger.py)."""
