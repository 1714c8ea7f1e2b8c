"""The `runtime.node` section, owned by the node install kind (reconciler/kinds/node_install.py)."""
