"""`whisperbatch serve`: the HTTP face of the job service."""
