"""whisperbatch: turn recordings into text and subtitles, one-off or from a watched folder."""

__version__ = "0.1.0"
