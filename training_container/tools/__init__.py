"""Developer tools for the container (not used at training time)."""
