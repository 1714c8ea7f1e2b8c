"""The `runtime.docker` section, owned by the docker kind (reconciler/kinds/docker.py)."""
