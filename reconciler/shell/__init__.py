"""Effects: the only code that runs commands, touches files, takes locks or reads git."""
