"""Size limits of a spec file (here, so that reading a cached spec does not import the parser)."""

MAX_BYTES = 1024 * 1024  # refuse bigger files before parsing
