"""Effects: the runner, the only code that runs commands or touches files; git and ssh."""
