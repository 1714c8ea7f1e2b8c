"""The `backup:` section, owned by the backup kind (reconciler/kinds/backup.py)."""
