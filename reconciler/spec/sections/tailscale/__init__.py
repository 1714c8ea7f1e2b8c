"""The `tailscale:` section, owned by the serve kind (reconciler/kinds/serve.py); the operator
kind (reconciler/kinds/operator.py) plans from its `operator`, the config kind
(reconciler/kinds/gateway_config.py) trusts the proxy of a profile a serve entry names."""
